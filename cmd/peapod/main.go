// Command peapod runs Kubernetes pods on one machine: `peapod serve` is the
// daemon (API server, pod manager and CRI runtime); the other commands are its CLI.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/peapod-dev/peapod/internal/dirs"
	"github.com/peapod-dev/peapod/internal/version"
)

type globalFlags struct {
	root     string
	logLevel string
}

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "peapod:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "peapod",
		Short:         "Kubernetes pods on one machine, driven with kubectl",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.root, "root", dirs.DefaultRoot, "directory that holds all of peapod's state")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn or error (default: info for serve, warn for the CLI)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		level := "warn"
		if cmd.Name() == "serve" {
			level = "info"
		}
		log, err := g.logger(level)
		if err != nil {
			return err
		}
		slog.SetDefault(log)
		return nil
	}
	root.AddCommand(newServeCommand(g), newImageCommand(g), newKubeconfigCommand(g), newKubectlCommand(g))
	return root
}

// logger logs to stderr at --log-level, or at def when the flag is not set.
func (g *globalFlags) logger(def string) (*slog.Logger, error) {
	name := g.logLevel
	if name == "" {
		name = def
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}

func (g *globalFlags) dirs() (dirs.Dirs, error) { return dirs.New(g.root) }
