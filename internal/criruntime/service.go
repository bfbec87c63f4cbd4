// Package criruntime is peapod's container runtime: a CRI v1 RuntimeService
// (k8s.io/cri-api) over runc, overlayfs snapshots, CNI and per-container
// monitors. One file per RPC, as containerd's internal/cri/server does.
//
// A sandbox is peapod-pause run by runc in new network (pinned by
// internal/netns, CNI set up before pause starts), IPC, UTS and, unless the
// host's is asked for, PID namespaces. Containers join those namespaces and
// have their own mount namespace and overlay root; each is created and then
// watched by a peapod-monitor that outlives the daemon and records the exit
// code. Metadata lives in DIR/runtime.db so that a new Service on the same
// root recovers every sandbox and container.
package criruntime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/peapod-dev/peapod/internal/cgroups"
	"github.com/peapod-dev/peapod/internal/enter"
	"github.com/peapod-dev/peapod/internal/image"
	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/netns"
	"github.com/peapod-dev/peapod/internal/network"
	"github.com/peapod-dev/peapod/internal/oci"
	"github.com/peapod-dev/peapod/internal/snapshot"
)

// Config is what the daemon wires into the runtime.
type Config struct {
	// Root is the persistent state directory (DIR); RunDir the tmpfs run
	// directory derived from it (netns pins live in RunDir/netns).
	Root, RunDir string
	Runc         *oci.Runc
	// MonitorBinary is peapod-monitor, PauseBinary peapod-pause.
	MonitorBinary, PauseBinary string
	// EnterBinary is peapod-enter, which runs ExecSync commands without
	// runc; empty runs them through runc exec.
	EnterBinary string
	Images      *image.Store
	Snapshots   *snapshot.Snapshotter
	Network     *network.Manager
	// Cgroups reads OOM kills from container cgroups; *cgroups.Manager
	// implements it. Nil disables OOMKilled detection.
	Cgroups Cgroups
	// DefaultCgroupParent is the cgroup parent of sandboxes whose config
	// names none (crictl, critest); it should be below the Cgroups root so
	// that their stats and OOM kills can be read. Empty means "/".
	DefaultCgroupParent string
	// StreamAddress is host:port of the streaming server whose URLs Exec,
	// Attach and PortForward return; DefaultStreamAddress when empty.
	StreamAddress string
	Clock         clock.Clock
	Logger        *slog.Logger
}

// Cgroups is what the runtime needs from internal/cgroups.
type Cgroups interface {
	// OOMKilled reports whether the kernel OOM-killed a process of the
	// cgroup at path (runc cgroupsPath form).
	OOMKilled(path string) (bool, error)
	// Stats reads the usage of the cgroup at path (cgroups.ErrNotFound when
	// it does not exist).
	Stats(path string) (*cgroups.Stats, error)
}

// Service implements runtimeapi.RuntimeServiceServer. Every RPC of the CRI
// that peapod does not implement yet is written out in unimplemented.go and
// returns codes.Unimplemented; the embedded UnimplementedRuntimeServiceServer
// only keeps the type compiling against newer cri-api versions.
type Service struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	cfg   Config
	log   *slog.Logger
	clock clock.Clock
	store *metaStore

	// mu guards the maps and every record in them; records are persisted
	// while it is held so that the database sees updates in memory order.
	mu         sync.RWMutex
	sandboxes  map[string]*sandboxRecord
	containers map[string]*containerRecord
	names      map[string]string // reserved name -> ID
	// exited is closed once a container's exit has been recorded.
	exited map[string]chan struct{}
	// deleted is closed once the runc delete after an exit is done.
	deleted map[string]chan struct{}

	// ops serializes the lifecycle calls on one sandbox or container.
	ops keyedMutex
	// starts orders a container's start before its exit: an exit observed
	// while StartContainer runs is recorded after RUNNING (and the STARTED
	// event), never before.
	starts keyedMutex

	pauseOnce sync.Mutex // guards preparing DIR/pause/rootfs

	cpuRate cpuRates

	// rro: runc supports recursive read-only mounts.
	rro bool
	// userns: pods can have user namespaces of their own.
	userns bool

	// evMu guards subscribers of GetContainerEvents.
	evMu        sync.Mutex
	subscribers map[chan *runtimeapi.ContainerEventResponse]struct{}

	// enter runs ExecSync commands (nil: runc exec runs them).
	enter *enter.Helper
	// execBundles caches *execBundle by container ID for ExecSync.
	execBundles sync.Map

	// stream serves the URLs that Exec, Attach and PortForward return.
	stream *streamServer

	// ctx ends when the Service is closed; exit watchers run under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ runtimeapi.RuntimeServiceServer = (*Service)(nil)

// New opens DIR/runtime.db and recovers every sandbox and container recorded
// there: pause processes and monitors are checked by PID and start time, and
// exits that happened while no Service was running are read from the
// monitors' exit files.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Root == "" || cfg.RunDir == "" {
		return nil, errors.New("criruntime: Root and RunDir are required")
	}
	if cfg.Runc == nil || cfg.Images == nil || cfg.Snapshots == nil {
		return nil, errors.New("criruntime: Runc, Images and Snapshots are required")
	}
	if cfg.MonitorBinary == "" || cfg.PauseBinary == "" {
		return nil, errors.New("criruntime: MonitorBinary and PauseBinary are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = plog.FromContext(ctx)
	}
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "sandboxes"), filepath.Join(cfg.Root, "containers"), cfg.RunDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create runtime directory: %w", err)
		}
	}
	st, err := openStore(filepath.Join(cfg.Root, "runtime.db"))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{
		cfg:         cfg,
		log:         cfg.Logger,
		clock:       cfg.Clock,
		store:       st,
		sandboxes:   map[string]*sandboxRecord{},
		containers:  map[string]*containerRecord{},
		names:       map[string]string{},
		exited:      map[string]chan struct{}{},
		deleted:     map[string]chan struct{}{},
		subscribers: map[chan *runtimeapi.ContainerEventResponse]struct{}{},
		ctx:         plog.WithLogger(sctx, cfg.Logger),
		cancel:      cancel,
	}
	s.rro = probeRecursiveReadOnly(ctx, cfg.Runc.Binary)
	s.userns = probeUserNamespaces(cfg.Root)
	if cfg.EnterBinary != "" {
		if s.enter, err = enter.OpenHelper(cfg.EnterBinary); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.preparePauseRootfs(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.recover(plog.WithLogger(ctx, cfg.Logger)); err != nil {
		s.Close()
		return nil, err
	}
	if s.stream, err = startStreamServer(s.ctx, cfg.StreamAddress, streamRuntime{s}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops watching monitors and closes the metadata database. Containers,
// their monitors and pause processes keep running: a new Service on the same
// root recovers them.
func (s *Service) Close() error {
	var streamErr error
	if s.stream != nil {
		streamErr = s.stream.stop()
	}
	s.cancel()
	s.wg.Wait()
	s.releaseRunDir()
	var enterErr error
	if s.enter != nil {
		enterErr = s.enter.Close()
	}
	return errors.Join(streamErr, enterErr, s.store.Close())
}

// releaseRunDir removes the run directory's netns mount point, runc state
// directory and the run directory itself once no sandbox pins a network
// namespace and no container has runc state, so that a stopped runtime
// leaves no mount behind; pods that outlive it keep theirs.
func (s *Service) releaseRunDir() {
	released, err := netns.ReleaseDir(s.netnsDir())
	if err != nil {
		s.log.Warn("keep run directory", "err", err)
		return
	}
	if !released {
		return
	}
	for _, dir := range []string{s.cfg.Runc.Root, s.cfg.RunDir} {
		if err := os.Remove(dir); err != nil {
			return // still in use (runc state, the CRI socket)
		}
	}
}

func (s *Service) sandboxDir(id string) string   { return filepath.Join(s.cfg.Root, "sandboxes", id) }
func (s *Service) containerDir(id string) string { return filepath.Join(s.cfg.Root, "containers", id) }
func (s *Service) pauseRootfs() string           { return filepath.Join(s.cfg.Root, "pause", "rootfs") }
func (s *Service) netnsDir() string              { return filepath.Join(s.cfg.RunDir, "netns") }

// reserveName reserves name for id; ErrAlreadyExists when another ID has it.
func (s *Service) reserveName(name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.names[name]; ok && other != id {
		return fmt.Errorf("%w: name %q is reserved for %s", ErrAlreadyExists, name, other)
	}
	s.names[name] = id
	return nil
}

func (s *Service) releaseName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.names, name)
}

// getSandbox returns a copy of the sandbox's record.
func (s *Service) getSandbox(id string) (sandboxRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.sandboxes[id]
	if !ok {
		return sandboxRecord{}, fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	}
	return *r, nil
}

// getContainer returns a copy of the container's record.
func (s *Service) getContainer(id string) (containerRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.containers[id]
	if !ok {
		return containerRecord{}, fmt.Errorf("container %q: %w", id, ErrNotFound)
	}
	return *r, nil
}

// updateSandbox applies f to the sandbox's record and persists it.
func (s *Service) updateSandbox(id string, f func(r *sandboxRecord)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sandboxes[id]
	if !ok {
		return fmt.Errorf("sandbox %q: %w", id, ErrNotFound)
	}
	c := *r
	f(&c)
	if err := s.store.putSandbox(&c); err != nil {
		return err
	}
	*r = c
	return nil
}

// updateContainer applies f to the container's record and persists it.
func (s *Service) updateContainer(id string, f func(r *containerRecord)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.containers[id]
	if !ok {
		return fmt.Errorf("container %q: %w", id, ErrNotFound)
	}
	c := *r
	f(&c)
	if err := s.store.putContainer(&c); err != nil {
		return err
	}
	*r = c
	return nil
}

// sandboxContainers returns copies of the records of the sandbox's containers.
func (s *Service) sandboxContainers(sandboxID string) []containerRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []containerRecord
	for _, c := range s.containers {
		if c.SandboxID == sandboxID {
			out = append(out, *c)
		}
	}
	return out
}

// keyedMutex serializes operations per ID.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(id string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l, ok := k.locks[id]
	if !ok {
		l = &keyedLock{}
		k.locks[id] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, id)
		}
		k.mu.Unlock()
	}
}

// logger is the context's logger, or the Service's when the caller set none.
func (s *Service) logger(ctx context.Context) *slog.Logger {
	if l := plog.FromContext(ctx); l != slog.Default() {
		return l
	}
	return s.log
}

// logWith returns ctx carrying the logger with args added.
func (s *Service) logWith(ctx context.Context, args ...any) context.Context {
	return plog.WithLogger(ctx, s.logger(ctx).With(args...))
}
