package main

import (
	"context"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/peapod-dev/peapod/internal/daemon"
	"github.com/peapod-dev/peapod/internal/network"
)

func newServeCommand(g *globalFlags) *cobra.Command {
	var o daemon.Options
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon in the foreground: API server, pod manager and container runtime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Dirs, err = g.dirs(); err != nil {
				return err
			}
			o.Logger = slog.Default()
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return daemon.Run(ctx, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Address, "address", "127.0.0.1:6443", "address of the Kubernetes API (HTTPS); port 0 picks a free one")
	f.StringVar(&o.NodeName, "node-name", "", "name of this node (default: the hostname)")
	f.StringVar(&o.CgroupRoot, "cgroup-root", "/peapod", "cgroup under which the QoS and pod cgroups are made")
	f.StringVar(&o.Bridge, "cni-bridge", network.DefaultBridge, "bridge of the default pod network")
	f.StringVar(&o.Subnet, "cni-subnet", network.DefaultSubnet, "subnet of the default pod network")
	f.StringSliceVar(&o.PluginDirs, "cni-plugin-dir", network.DefaultPluginDirs, "directories holding the CNI plugins")
	f.StringVar(&o.CRISocket, "cri-socket", "", "CRI gRPC socket (default: cri.sock in the run directory)")
	f.StringVar(&o.Runc, "runc", "runc", "OCI runtime binary")
	f.StringVar(&o.PauseBinary, "pause-binary", "peapod-pause", "infra process binary (a bare name is looked up beside peapod)")
	f.StringVar(&o.MonitorBinary, "monitor-binary", "peapod-monitor", "container monitor binary (a bare name is looked up beside peapod)")
	f.StringVar(&o.EnterBinary, "enter-binary", "peapod-enter", "lean exec helper for ExecSync and exec probes (a bare name is looked up beside peapod)")
	return c
}
