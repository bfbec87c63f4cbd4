// Package daemon wires peapod's layers into one process: the API server and
// its store, the pod manager, and the CRI runtime it drives in-process.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/peapod-dev/peapod/internal/apiserver"
	"github.com/peapod-dev/peapod/internal/cgroups"
	"github.com/peapod-dev/peapod/internal/cri/inproc"
	criserver "github.com/peapod-dev/peapod/internal/cri/server"
	"github.com/peapod-dev/peapod/internal/criimage"
	"github.com/peapod-dev/peapod/internal/criruntime"
	"github.com/peapod-dev/peapod/internal/dirs"
	"github.com/peapod-dev/peapod/internal/image"
	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/network"
	"github.com/peapod-dev/peapod/internal/oci"
	"github.com/peapod-dev/peapod/internal/podmanager"
	"github.com/peapod-dev/peapod/internal/registry"
	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/version"
)

// Options configure `peapod serve`.
type Options struct {
	Dirs          dirs.Dirs
	Address       string   // API server listen address
	NodeName      string   // the node's name; the hostname by default
	CgroupRoot    string   // parent of the QoS and pod cgroups
	Bridge        string   // CNI bridge of the default network
	Subnet        string   // pod subnet of the default network
	PluginDirs    []string // where the CNI plugins are
	Runc          string   // runc binary (name or path)
	PauseBinary   string   // peapod-pause (name beside peapod, or a path)
	MonitorBinary string   // peapod-monitor (likewise)
	EnterBinary   string   // peapod-enter (likewise)
	CRISocket     string   // CRI gRPC socket; RUN/cri.sock by default
	Logger        *slog.Logger
}

// Run serves until ctx is cancelled. Containers keep running when it returns:
// they belong to their monitors, not to the daemon.
func Run(ctx context.Context, o Options) (retErr error) {
	if err := preflight(&o); err != nil {
		return err
	}
	log := o.Logger
	ctx = plog.WithLogger(ctx, log)
	if o.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		o.NodeName = h
	}
	for _, dir := range []string{o.Dirs.Root, o.Dirs.Run, o.Dirs.Logs()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create state directory: %w", err)
		}
	}
	unlock, err := lockRoot(o.Dirs)
	if err != nil {
		return err
	}
	defer unlock()
	// Last, once the CRI socket is gone: the runtime left the run directory
	// itself when it had no other use for it.
	defer os.Remove(o.Dirs.Run)
	clk := clock.RealClock{}

	images, err := image.Open(o.Dirs.Images(), image.WithRegistries(o.Dirs.RegistryConf(), o.Dirs.AuthFile()))
	if err != nil {
		return fmt.Errorf("open image store: %w", err)
	}
	netw, err := network.New(network.Config{
		PluginDirs: o.PluginDirs,
		ConfDir:    o.Dirs.CNIConf(),
		CacheDir:   o.Dirs.CNICache(),
		IPAMDir:    o.Dirs.CNIIPAM(),
		Bridge:     o.Bridge,
		Subnet:     o.Subnet,
	})
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	cg, err := cgroups.New(o.CgroupRoot)
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	rt, err := criruntime.New(ctx, criruntime.Config{
		Root:          o.Dirs.Root,
		RunDir:        o.Dirs.Run,
		Runc:          &oci.Runc{Binary: o.Runc, Root: o.Dirs.RuncRoot()},
		MonitorBinary: o.MonitorBinary,
		PauseBinary:   o.PauseBinary,
		EnterBinary:   o.EnterBinary,
		Images:        images,
		Snapshots:     snapshot.New(o.Dirs.Snapshots()),
		Network:       netw,
		Cgroups:       cg,
		// crictl and critest send no cgroup parent; their pods still belong under ours.
		DefaultCgroupParent: cg.Root(),
		Clock:               clk,
		Logger:              log.With("component", "runtime"),
	})
	if err != nil {
		return fmt.Errorf("start runtime: %w", err)
	}
	defer func() { retErr = errors.Join(retErr, rt.Close()) }()
	imageServer := criimage.New(images, clk)
	runtimeSvc := inproc.NewRuntimeService(rt)
	imageSvc := inproc.NewImageService(imageServer)

	st, err := registry.OpenStore(o.Dirs.Root)
	if err != nil {
		return fmt.Errorf("open API store: %w", err)
	}
	defer func() { retErr = errors.Join(retErr, st.Close()) }()
	reg, err := registry.New(st, clk, o.NodeName)
	if err != nil {
		return fmt.Errorf("API registry: %w", err)
	}
	// The Node object: the scheduler's view of this machine (labels, allocatable).
	if _, err := reg.EnsureNode(ctx, registry.NodeOptions{
		KubeletVersion:          apiserver.KubernetesVersion,
		ContainerRuntimeVersion: version.RuntimeName + "://" + version.Version,
		RootDir:                 o.Dirs.Root,
	}); err != nil {
		return fmt.Errorf("register the node: %w", err)
	}

	pm := podmanager.New(podmanager.Config{
		NodeName: o.NodeName,
		Runtime:  runtimeSvc,
		Images:   imageSvc,
		Pods:     reg.Pods(),
		Cgroups:  cg,
		LogRoot:  o.Dirs.Logs(),
		PodsDir:  o.Dirs.Pods(),
		Objects:  objects{reg},
		Node:     objects{reg},
		Clock:    clk,
		Logger:   log.With("component", "podmanager"),
	})
	api, err := apiserver.New(apiserver.Config{
		Addr:     o.Address,
		Dir:      o.Dirs.Root,
		Registry: reg,
		Logs:     pm,
		Streams:  pm,
		Logger:   log.With("component", "apiserver"),
	})
	if err != nil {
		return fmt.Errorf("API server: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The node's Lease in kube-node-lease, renewed every 10 s as the
	// kubelet's node lease controller does (kubectl describe node shows it).
	leaseDone := make(chan struct{})
	go func() { defer close(leaseDone); reg.RunNodeLease(ctx) }()
	defer func() { cancel(); <-leaseDone }()
	criSocket := o.CRISocket
	if criSocket == "" {
		criSocket = o.Dirs.CRISocket()
	}
	// The CRI server and the pod manager run until ctx ends; the first of
	// them to fail ends the other and the API server too.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	stopped := func(err error) error {
		cancel()
		wg.Wait()
		close(errs)
		for e := range errs {
			err = errors.Join(err, e)
		}
		return err
	}
	criReady := make(chan struct{})
	run("CRI server", func() error {
		return criserver.Serve(ctx, criSocket, rt, imageServer, func() { close(criReady) })
	})
	select {
	case <-criReady:
	case <-ctx.Done():
		return stopped(nil)
	}
	run("pod manager", func() error { return pm.Run(ctx) })
	if err := api.Start(ctx); err != nil {
		return stopped(fmt.Errorf("start API server: %w", err))
	}
	log.Info("peapod is ready", "api", api.Addr(), "kubeconfig", o.Dirs.Kubeconfig(), "cri", criSocket, "node", o.NodeName, "root", o.Dirs.Root)

	<-ctx.Done()
	log.Info("shutting down; containers keep running")
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	return stopped(api.Shutdown(shutdownCtx))
}

// lockRoot makes sure one daemon at a time serves a root: two would recover,
// relist and clean up each other's sandboxes and run directory.
func lockRoot(d dirs.Dirs) (func(), error) {
	path := filepath.Join(d.Root, "peapod.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", d.Root, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another peapod serve is running with --root %s", d.Root)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
