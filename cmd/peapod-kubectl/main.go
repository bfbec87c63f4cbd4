// Command peapod-kubectl is kubectl (k8s.io/kubectl's own command), built with
// peapod so that a machine without kubectl can drive the daemon; `peapod
// kubectl` runs it with the daemon's kubeconfig. It is a binary of its own so
// that the daemon does not carry kubectl's code and memory.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"

	"github.com/peapod-dev/peapod/internal/dirs"
)

func main() {
	if os.Getenv("KUBECONFIG") == "" {
		d, err := dirs.New(dirs.DefaultRoot)
		if err == nil {
			os.Setenv("KUBECONFIG", d.Kubeconfig())
		}
	}
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlcmd.KubectlOptions{
		PluginHandler: kubectlcmd.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
		Arguments:     os.Args,
		ConfigFlags:   genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0).WithWarningPrinter(streams),
		IOStreams:     streams,
	})
	// kubectl's commands print their own errors and exit with kubectl's codes
	// (kubectl exec passes on the remote command's exit status).
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
