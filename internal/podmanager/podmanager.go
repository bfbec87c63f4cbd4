// Package podmanager is peapod's kubelet: it watches the pods bound to this node,
// runs one worker per pod (keyed by UID) that computes the actions needed to bring
// the runtime to the pod's spec (computePodActions) and applies them through the
// CRI interfaces, relists the runtime every second to notice container exits, and
// writes pod status through one status owner. It reaches the runtime only through
// k8s.io/cri-api RuntimeService and ImageManagerService.
//
// Wiring (cmd/peapod, internal/daemon):
//
//	pm := podmanager.New(podmanager.Config{
//		NodeName: node, Runtime: inproc.NewRuntimeService(rt), Images: inproc.NewImageService(criimage.New(imgs, clk)),
//		Pods: reg.Pods(), Cgroups: cg, LogRoot: dirs.Logs(), PodsDir: filepath.Join(root, "pods"),
//		Objects: configMapsAndSecrets /* optional */, Clock: clk, Logger: log,
//	})
//	go pm.Run(ctx)            // the API server's LogStreamer is pm (StreamLogs)
package podmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/flowcontrol"
	cri "k8s.io/cri-api/pkg/apis"
	"k8s.io/utils/clock"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// PodStore is what the pod manager needs from the registry (internal/registry's
// Pods()): the pods, a watch on them, status writes, the final removal of a
// terminated pod and events.
type PodStore interface {
	// ListPods returns every pod and the resourceVersion to watch from.
	ListPods(ctx context.Context) ([]*corev1.Pod, string, error)
	// WatchPods streams pod changes after resourceVersion rv.
	WatchPods(ctx context.Context, rv string) (watch.Interface, error)
	// UpdatePodStatus writes pod.Status (the status subresource); the UID is checked.
	UpdatePodStatus(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error)
	// DeletePodFinal removes the object once everything of the pod is stopped.
	DeletePodFinal(ctx context.Context, namespace, name string, uid types.UID) error
	// RecordEvent records an event about the pod.
	RecordEvent(ctx context.Context, obj *corev1.Pod, eventType, reason, message string)
}

// CgroupManager is what the pod manager needs from internal/cgroups: the pod
// cgroup under its QoS parent.
type CgroupManager interface {
	// PodPath returns the pod's cgroup (the sandbox's cgroup parent) for a QoS
	// class ("Guaranteed", "Burstable", "BestEffort") and pod UID.
	PodPath(qos string, uid string) string
	// EnsurePod creates the pod cgroup (and its QoS parent) with the pod-level limits.
	EnsurePod(path string, r *specs.LinuxResources) error
	// RemovePod removes the pod cgroup; idempotent.
	RemovePod(path string) error
}

// Config wires the pod manager.
type Config struct {
	// NodeName is this node: only pods with spec.nodeName == NodeName are run.
	NodeName string
	// HostIP is reported as status.hostIP(s); detected when empty.
	HostIP string
	// Runtime and Images are the CRI services (internal/cri/inproc or a gRPC client).
	Runtime cri.RuntimeService
	Images  cri.ImageManagerService
	// Pods is the registry.
	Pods PodStore
	// Cgroups manages pod cgroups; nil runs pods without a pod cgroup (tests).
	Cgroups CgroupManager
	// LogRoot holds the pods' log directories, LogRoot/<ns>_<name>_<uid>/ (DIR/logs).
	LogRoot string
	// PodsDir holds each pod's volumes, /etc/hosts and termination message
	// files, PodsDir/<uid>/ (DIR/pods); without it pods cannot have volumes.
	PodsDir string
	// Objects gives ConfigMaps and Secrets for volumes and env; nil: none.
	Objects ObjectGetter
	// Node gives this node's object for admission (node selector, affinity,
	// resources of pods bound here by hand); nil admits every pod.
	Node NodeGetter
	// HostsFile is the host's /etc/hosts, copied for hostNetwork pods.
	HostsFile string
	// ResolvConf is the host's resolver configuration used for the pods' DNS
	// (no cluster DNS here); default /etc/resolv.conf.
	ResolvConf string
	// PodPidsLimit caps each pod's processes (the kubelet's podPidsLimit); 0: no limit.
	PodPidsLimit int64
	// MemoryCapacity is the machine's memory in bytes, for Burstable
	// oom_score_adj; read from /proc/meminfo when zero.
	MemoryCapacity int64
	// RelistPeriod is the runtime relist period (PLEG); default 1 s.
	RelistPeriod time.Duration
	// EvictionPeriod is how often local storage is measured against emptyDir
	// sizeLimits and ephemeral-storage limits (the kubelet's housekeeping); default 10 s.
	EvictionPeriod time.Duration
	// Clock drives back-off, grace periods and timestamps; default the real clock.
	Clock clock.Clock
	// Logger; default slog.Default().
	Logger *slog.Logger
}

const (
	// Back-off of container restarts and image pulls, as the kubelet's.
	backOffPeriod    = 10 * time.Second
	maxBackOffPeriod = 300 * time.Second
	// resyncPeriod: every pod is synced at least this often (the kubelet's
	// syncFrequency), so that ConfigMap and Secret volumes follow their objects.
	resyncPeriod = time.Minute
	// minimumGracePeriodInSeconds is the kubelet's floor for StopContainer.
	minimumGracePeriodInSeconds = 2
	// defaultTerminationGracePeriod when the pod has none.
	defaultTerminationGracePeriod = 30
)

// Manager is the kubelet of peapod.
type Manager struct {
	cfg     Config
	runtime cri.RuntimeService
	images  cri.ImageManagerService
	store   PodStore
	cgroups CgroupManager
	clock   clock.Clock
	log     *slog.Logger

	runtimeName string

	backOff      *flowcontrol.Backoff // container restarts (CrashLoopBackOff)
	imageBackOff *flowcontrol.Backoff // image pulls (ImagePullBackOff)
	prevPullErr  sync.Map             // back-off key → the last pull's error, for ImagePullBackOff's message
	reasonCache  *reasonCache
	status       *statusManager
	probes       *proberManager

	mu      sync.Mutex
	runCtx  context.Context // set while Run runs: workers started later use it
	pods    map[types.UID]*podRecord
	workers map[types.UID]*podWorker
	synced  bool // the first list has been seen: runtime pods unknown to it are orphans
	// lastResync is when every pod was last woken by the relist.
	lastResync time.Time
	wg         sync.WaitGroup

	pleg *pleg

	evictions evictions // decided by the eviction check, carried out by the workers
}

// podRecord is the manager's view of one pod.
type podRecord struct {
	pod *corev1.Pod
	// removed: the object is gone from the API (force deletion) — kill and clean up.
	removed bool
	// orphan: found only in the runtime (no API object); pod is synthesised from labels.
	orphan bool
	// admitted: the pod passed admission (or ran before); its requests count
	// against the node's allocatable.
	admitted bool
	// terminated: a terminal pod whose sandbox has been stopped; nothing more to do
	// until it is deleted.
	terminated bool
	// requeueAt asks the relist to sync the pod again at that time (back-off).
	requeueAt time.Time
}

// New returns a pod manager; call Run.
func New(cfg Config) *Manager {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RelistPeriod == 0 {
		cfg.RelistPeriod = time.Second
	}
	if cfg.EvictionPeriod == 0 {
		cfg.EvictionPeriod = defaultEvictionPeriod
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.HostsFile == "" {
		cfg.HostsFile = "/etc/hosts"
	}
	if cfg.MemoryCapacity == 0 {
		cfg.MemoryCapacity = machineMemory()
	}
	if cfg.HostIP == "" {
		cfg.HostIP = detectHostIP()
	}
	m := &Manager{
		cfg:          cfg,
		runtime:      cfg.Runtime,
		images:       cfg.Images,
		store:        cfg.Pods,
		cgroups:      cfg.Cgroups,
		clock:        cfg.Clock,
		log:          cfg.Logger,
		backOff:      flowcontrol.NewFakeBackOff(backOffPeriod, maxBackOffPeriod, cfg.Clock),
		imageBackOff: flowcontrol.NewFakeBackOff(backOffPeriod, maxBackOffPeriod, cfg.Clock),
		reasonCache:  newReasonCache(),
		pods:         map[types.UID]*podRecord{},
		workers:      map[types.UID]*podWorker{},
	}
	m.status = newStatusManager(cfg.Pods)
	m.probes = newProberManager(m)
	m.pleg = newPLEG(cfg.Runtime)
	return m
}

// Run watches the pods and runs them until ctx is done. Containers keep running
// when it returns: a restarted daemon adopts them.
func (m *Manager) Run(ctx context.Context) error {
	ctx = plog.WithLogger(ctx, m.log.With("component", "podmanager"))
	if err := m.init(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	m.runCtx = ctx
	m.mu.Unlock()
	var runErr error
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		runErr = m.watchLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		m.relistLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		m.evictionLoop(ctx)
	}()
	wg.Wait()
	m.wg.Wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

// init asks the runtime for its name (containerIDs are "<runtimeName>://<id>").
func (m *Manager) init(ctx context.Context) error {
	v, err := m.runtime.Version(ctx, "v1")
	if err != nil {
		return fmt.Errorf("podmanager: runtime version: %w", err)
	}
	m.runtimeName = v.RuntimeName
	return nil
}

// watchLoop lists the pods, then watches them; it relists when the watch ends.
func (m *Manager) watchLoop(ctx context.Context) error {
	log := plog.FromContext(ctx)
	for ctx.Err() == nil {
		pods, rv, err := m.store.ListPods(ctx)
		if err != nil {
			log.Error("listing pods", "err", err)
			if !m.sleep(ctx, time.Second) {
				break
			}
			continue
		}
		m.handleList(ctx, pods)
		w, err := m.store.WatchPods(ctx, rv)
		if err != nil {
			log.Error("watching pods", "err", err)
			if !m.sleep(ctx, time.Second) {
				break
			}
			continue
		}
		m.consumeWatch(ctx, w)
		w.Stop()
	}
	return ctx.Err()
}

func (m *Manager) consumeWatch(ctx context.Context, w watch.Interface) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok {
				return
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					m.handlePod(ctx, pod)
				}
			case watch.Deleted:
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					m.handlePodRemoved(ctx, pod)
				}
			case watch.Error:
				// Too old a resourceVersion or a server error: list again.
				return
			}
		}
	}
}

func (m *Manager) sleep(ctx context.Context, d time.Duration) bool {
	t := m.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

func (m *Manager) onThisNode(pod *corev1.Pod) bool {
	return pod.Spec.NodeName != "" && pod.Spec.NodeName == m.cfg.NodeName
}

// handleList replaces the known pods with a full list; pods that disappeared
// meanwhile are treated as removed.
func (m *Manager) handleList(ctx context.Context, pods []*corev1.Pod) {
	seen := map[types.UID]bool{}
	for _, pod := range pods {
		if !m.onThisNode(pod) {
			continue
		}
		seen[pod.UID] = true
		m.handlePod(ctx, pod)
	}
	m.mu.Lock()
	var gone []*corev1.Pod
	for uid, rec := range m.pods {
		if !seen[uid] && !rec.orphan && !rec.removed {
			gone = append(gone, rec.pod)
		}
	}
	m.synced = true
	m.mu.Unlock()
	for _, pod := range gone {
		m.handlePodRemoved(ctx, pod)
	}
}

// handlePod records the pod's latest object and wakes its worker.
func (m *Manager) handlePod(ctx context.Context, pod *corev1.Pod) {
	if !m.onThisNode(pod) {
		return
	}
	m.mu.Lock()
	rec := m.pods[pod.UID]
	if rec == nil {
		rec = &podRecord{}
		m.pods[pod.UID] = rec
	}
	// Our own status writes come back through the watch: like the kubelet's
	// config source (a reconcile, not an update), they need no sync. Syncing
	// on them would, for one, replace ErrImagePull by ImagePullBackOff at once.
	wake := rec.pod == nil || rec.orphan || !statusOnly(rec.pod, pod)
	rec.pod = pod
	rec.orphan = false
	if pod.DeletionTimestamp != nil {
		m.interruptSyncLocked(pod.UID)
	}
	m.mu.Unlock()
	if wake {
		m.dispatch(ctx, pod.UID)
	}
}

// statusOnly reports whether pod b differs from a only in its status and
// resourceVersion (the kubelet's podsDifferSemantically, negated).
func statusOnly(a, b *corev1.Pod) bool {
	am, bm := a.ObjectMeta, b.ObjectMeta
	am.ResourceVersion, bm.ResourceVersion = "", ""
	am.ManagedFields, bm.ManagedFields = nil, nil
	return apiequality.Semantic.DeepEqual(am, bm) && apiequality.Semantic.DeepEqual(a.Spec, b.Spec)
}

// handlePodRemoved: the object is gone from the API (force deletion, or removed
// by us after termination); whatever still runs is killed and cleaned up.
func (m *Manager) handlePodRemoved(ctx context.Context, pod *corev1.Pod) {
	m.mu.Lock()
	rec := m.pods[pod.UID]
	if rec == nil {
		m.mu.Unlock()
		return
	}
	rec.removed = true
	if pod != nil && rec.pod != nil && pod.DeletionTimestamp != nil {
		rec.pod = pod
	}
	m.interruptSyncLocked(pod.UID)
	m.mu.Unlock()
	m.dispatch(ctx, pod.UID)
}

// relistLoop is the PLEG: every RelistPeriod it lists the runtime's sandboxes and
// containers and wakes the workers of pods whose state changed, of pods waiting
// for a back-off to end, and of orphans.
func (m *Manager) relistLoop(ctx context.Context) {
	for {
		m.relist(ctx)
		if !m.sleep(ctx, m.cfg.RelistPeriod) {
			return
		}
	}
}

// relist runs one PLEG pass.
func (m *Manager) relist(ctx context.Context) {
	changed, present, err := m.pleg.relist(ctx)
	if err != nil {
		plog.FromContext(ctx).Error("relisting the runtime", "err", err)
		return
	}
	now := m.clock.Now()
	var wake []types.UID
	m.mu.Lock()
	resync := now.Sub(m.lastResync) >= resyncPeriod
	if resync {
		m.lastResync = now
	}
	for uid, meta := range present {
		if _, ok := m.pods[uid]; !ok && m.synced {
			// Runs in the runtime but no pod exists: an orphan to kill and remove.
			m.pods[uid] = &podRecord{pod: orphanPod(uid, meta), orphan: true}
			changed[uid] = true
		}
	}
	for uid, rec := range m.pods {
		if resync || changed[uid] || (!rec.requeueAt.IsZero() && !now.Before(rec.requeueAt)) {
			rec.requeueAt = time.Time{}
			wake = append(wake, uid)
		}
	}
	m.mu.Unlock()
	for _, uid := range wake {
		m.dispatch(ctx, uid)
	}
}

// requeue asks for another sync of the pod after d.
func (m *Manager) requeue(uid types.UID, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec := m.pods[uid]; rec != nil {
		at := m.clock.Now().Add(d)
		if rec.requeueAt.IsZero() || at.Before(rec.requeueAt) {
			rec.requeueAt = at
		}
	}
}

// runContext is Run's context, nil when the manager is not running.
func (m *Manager) runContext() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runCtx
}

// wake asks the pod's worker for a sync (probe results, hooks); a no-op when
// the manager is not running.
func (m *Manager) wake(uid types.UID) {
	if ctx := m.runContext(); ctx != nil {
		m.dispatch(ctx, uid)
	}
}

// currentPod returns the pod's latest object.
func (m *Manager) currentPod(uid types.UID) *corev1.Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec := m.pods[uid]; rec != nil {
		return rec.pod
	}
	return nil
}

// clearRequeue: a sync is starting, it asks again for what it still needs.
func (m *Manager) clearRequeue(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec := m.pods[uid]; rec != nil {
		rec.requeueAt = time.Time{}
	}
}

// record returns a copy of the pod's record.
func (m *Manager) record(uid types.UID) (podRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.pods[uid]
	if rec == nil {
		return podRecord{}, false
	}
	return *rec, true
}

func (m *Manager) forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pods, uid)
	m.status.forget(uid)
	m.reasonCache.forget(uid)
	m.probes.removePod(uid)
}

func (m *Manager) markTerminated(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec := m.pods[uid]; rec != nil {
		rec.terminated = true
	}
}
