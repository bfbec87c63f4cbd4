package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newKubeconfigCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the path of the kubeconfig that reaches the local daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := g.dirs()
			if err != nil {
				return err
			}
			if _, err := os.Stat(d.Kubeconfig()); err != nil {
				return fmt.Errorf("no kubeconfig at %s: is `peapod serve --root %s` running? (%w)", d.Kubeconfig(), d.Root, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), d.Kubeconfig())
			return nil
		},
	}
}
