package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// newKubectlCommand runs kubectl (peapod-kubectl, built beside peapod) against
// the local daemon, as k3s does, unless KUBECONFIG or --kubeconfig says
// otherwise.
func newKubectlCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl [flags]",
		Short:              "Run kubectl against the local daemon",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			args = g.takeGlobalFlags(args)
			d, err := g.dirs()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("locate the peapod executable: %w", err)
			}
			kubectl := exe + "-kubectl"
			if _, err := os.Stat(kubectl); err != nil {
				return fmt.Errorf("peapod-kubectl not found beside peapod (%s): build it with `go build -o DIR/ ./cmd/...`", kubectl)
			}
			if os.Getenv("KUBECONFIG") == "" {
				os.Setenv("KUBECONFIG", d.Kubeconfig())
			}
			return syscall.Exec(kubectl, append([]string{"kubectl"}, args...), os.Environ())
		},
	}
}

// takeGlobalFlags removes peapod's own flags from args: with flag parsing
// disabled (every other flag is kubectl's), cobra hands them over too.
func (g *globalFlags) takeGlobalFlags(args []string) []string {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--root" && i+1 < len(args):
			g.root = args[i+1]
			i++
		case strings.HasPrefix(a, "--root="):
			g.root = strings.TrimPrefix(a, "--root=")
		case a == "--log-level" && i+1 < len(args):
			i++
		case strings.HasPrefix(a, "--log-level="):
		default:
			rest = append(rest, a)
		}
	}
	return rest
}
