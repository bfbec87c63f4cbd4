package podmanager

import (
	"context"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// Probe defaults of the API.
const (
	defaultProbePeriod           = 10
	defaultProbeTimeout          = 1
	defaultProbeSuccessThreshold = 1
	defaultProbeFailureThreshold = 3
)

type probeKey struct {
	uid       types.UID
	container string
	t         probeType
}

// proberManager is the kubelet's prober.Manager: one worker goroutine per probe
// of a container, feeding a results cache per probe type keyed by container ID.
// A changed result wakes the pod's worker.
type proberManager struct {
	m       *Manager
	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	results map[probeType]map[string]probeResult
}

func newProberManager(m *Manager) *proberManager {
	return &proberManager{
		m:       m,
		workers: map[probeKey]*probeWorker{},
		results: map[probeType]map[string]probeResult{liveness: {}, readiness: {}, startup: {}},
	}
}

func (p *proberManager) get(t probeType, containerID string) (probeResult, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.results[t][containerID]
	return r, ok
}

// set records a result; a change wakes the pod's worker.
func (p *proberManager) set(t probeType, containerID string, r probeResult, uid types.UID) {
	p.mu.Lock()
	old, ok := p.results[t][containerID]
	p.results[t][containerID] = r
	p.mu.Unlock()
	if !ok || old != r {
		p.m.wake(uid)
	}
}

func (p *proberManager) remove(t probeType, containerID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.results[t], containerID)
}

func (p *proberManager) hasWorker(uid types.UID, name string, t probeType) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.workers[probeKey{uid, name, t}]
	return ok
}

func (p *proberManager) worker(uid types.UID, name string, t probeType) *probeWorker {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers[probeKey{uid, name, t}]
}

// addPod creates the probe workers of the pod's sidecars and app containers
// (idempotent); they run when the manager runs.
func (p *proberManager) addPod(pod *corev1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	add := func(c *corev1.Container) {
		for t, spec := range map[probeType]*corev1.Probe{liveness: c.LivenessProbe, readiness: c.ReadinessProbe, startup: c.StartupProbe} {
			if spec == nil {
				continue
			}
			key := probeKey{pod.UID, c.Name, t}
			if _, ok := p.workers[key]; ok {
				continue
			}
			w := newProbeWorker(p, t, pod, c, spec)
			p.workers[key] = w
			if ctx := p.m.runContext(); ctx != nil {
				go w.run(ctx)
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		if isRestartableInitContainer(&pod.Spec.InitContainers[i]) {
			add(&pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
}

// removePod stops the pod's probe workers.
func (p *proberManager) removePod(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		if key.uid == uid {
			w.stopOnce()
			delete(p.workers, key)
			for t := range p.results {
				delete(p.results[t], w.containerIDLocked())
			}
		}
	}
}

// updatePodStatus sets started and ready of each container from the probe
// results (prober manager UpdatePodStatus): a running container without a
// startup probe is started, a started one without a readiness probe is ready;
// a regular init container is ready once it exited 0.
func (p *proberManager) updatePodStatus(pod *corev1.Pod, s *corev1.PodStatus) {
	started := func(c corev1.ContainerStatus) bool {
		if c.State.Running == nil {
			return false
		}
		if r, ok := p.get(startup, trimContainerID(c.ContainerID)); ok {
			return r == resultSuccess
		}
		return !p.hasWorker(pod.UID, c.Name, startup)
	}
	ready := func(c corev1.ContainerStatus) bool {
		if c.State.Running == nil {
			return false
		}
		if r, ok := p.get(readiness, trimContainerID(c.ContainerID)); ok {
			return r == resultSuccess
		}
		return !p.hasWorker(pod.UID, c.Name, readiness)
	}
	for i := range s.ContainerStatuses {
		c := &s.ContainerStatuses[i]
		st := started(*c)
		c.Started = &st
		c.Ready = st && ready(*c)
	}
	for i := range s.InitContainerStatuses {
		c := &s.InitContainerStatuses[i]
		st := started(*c)
		c.Started = &st
		if isRestartableInitContainer(initContainerByName(pod, c.Name)) {
			c.Ready = st && ready(*c)
			continue
		}
		c.Ready = c.State.Terminated != nil && c.State.Terminated.ExitCode == 0
	}
}

func trimContainerID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		return id[i+3:]
	}
	return id
}

// probeWorker is prober/worker.go: it probes one container periodically and
// records results once the thresholds are reached.
type probeWorker struct {
	pm        *proberManager
	t         probeType
	pod       *corev1.Pod
	container corev1.Container
	spec      corev1.Probe
	stop      chan struct{}
	once      sync.Once

	initialValue probeResult
	mu           sync.Mutex
	containerID  string
	lastResult   probeResult
	resultRun    int
	onHold       bool
}

func newProbeWorker(p *proberManager, t probeType, pod *corev1.Pod, c *corev1.Container, spec *corev1.Probe) *probeWorker {
	w := &probeWorker{pm: p, t: t, pod: pod, container: *c, spec: *spec, stop: make(chan struct{}), lastResult: resultUnknown}
	if w.spec.PeriodSeconds <= 0 {
		w.spec.PeriodSeconds = defaultProbePeriod
	}
	if w.spec.TimeoutSeconds <= 0 {
		w.spec.TimeoutSeconds = defaultProbeTimeout
	}
	if w.spec.SuccessThreshold <= 0 {
		w.spec.SuccessThreshold = defaultProbeSuccessThreshold
	}
	if w.spec.FailureThreshold <= 0 {
		w.spec.FailureThreshold = defaultProbeFailureThreshold
	}
	switch t {
	case readiness:
		w.initialValue = resultFailure
	case liveness:
		w.initialValue = resultSuccess
	default:
		w.initialValue = resultUnknown
	}
	return w
}

func (w *probeWorker) stopOnce() { w.once.Do(func() { close(w.stop) }) }

func (w *probeWorker) containerIDLocked() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.containerID
}

// run probes every periodSeconds until the pod ends or the worker is stopped.
func (w *probeWorker) run(ctx context.Context) {
	clk := w.pm.m.clock
	period := time.Duration(w.spec.PeriodSeconds) * time.Second
	defer func() {
		w.pm.mu.Lock()
		key := probeKey{w.pod.UID, w.container.Name, w.t}
		if w.pm.workers[key] == w {
			delete(w.pm.workers, key)
		}
		w.pm.mu.Unlock()
		if id := w.containerIDLocked(); id != "" {
			w.pm.remove(w.t, id)
		}
	}()
	phase := w.phase(period)
	for w.doProbe(ctx) {
		t := clk.NewTimer(untilTick(clk.Now(), period, phase))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.stop:
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// probeGrid is the spacing of the instants probes may start at.
const probeGrid = 100 * time.Millisecond

// phase is where in each period the worker's ticks fall: a multiple of
// probeGrid, fixed per pod, container and probe type. The workers' probes
// thus stay spread over the period, as the kubelet's random start spreads
// them, yet they coalesce on at most ten instants a second. Each wake-up of
// the daemon costs far more than a probe's own work (the Go runtime's
// sysmon polls every 20 µs for a millisecond after an idle process makes a
// syscall): probes at 150 distinct instants a second cost the daemon
// several times the CPU of the same probes on ten.
func (w *probeWorker) phase(period time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(string(w.pod.UID) + "/" + w.container.Name + "/" + w.t.String()))
	slots := max(1, int64(period/probeGrid))
	return time.Duration(int64(h.Sum32())%slots) * probeGrid
}

// untilTick is how long from now until the next tick of a worker whose
// ticks are period apart at phase into each period (counted from the zero
// time, as time.Truncate does). Like the kubelet's ticker, probes start
// every period however long each takes: a tick missed during a slow probe
// is dropped, and a 300 ms exec does not stretch a 1 s period to 1.3 s.
func untilTick(now time.Time, period, phase time.Duration) time.Duration {
	d := (phase - now.Sub(now.Truncate(period))) % period
	if d <= 0 {
		d += period
	}
	return d
}

// doProbe probes once; false ends the worker (kubelet's worker.doProbe).
func (w *probeWorker) doProbe(ctx context.Context) bool {
	m := w.pm.m
	phase, podIP, c, ok := m.status.containerStatus(w.pod.UID, w.container.Name)
	if !ok {
		return true // not synced yet
	}
	if isTerminalPhase(phase) {
		return false
	}
	if c == nil || c.ContainerID == "" {
		return true // not created yet
	}
	id := trimContainerID(c.ContainerID)
	// Lock order: proberManager.mu before probeWorker.mu; never call into the
	// manager while holding w.mu.
	w.mu.Lock()
	oldID := w.containerID
	newContainer := oldID != id
	if newContainer {
		w.containerID = id
		w.onHold = false
	}
	onHold := w.onHold
	w.mu.Unlock()
	if newContainer {
		if oldID != "" {
			w.pm.remove(w.t, oldID)
		}
		w.pm.set(w.t, id, w.initialValue, w.pod.UID)
	}
	if onHold {
		return true
	}
	if c.State.Running == nil {
		w.pm.set(w.t, id, resultFailure, w.pod.UID)
		return c.State.Terminated == nil || w.pod.Spec.RestartPolicy != corev1.RestartPolicyNever
	}
	if pod := m.currentPod(w.pod.UID); pod != nil && pod.DeletionTimestamp != nil && (w.t == liveness || w.t == startup) {
		return true
	}
	if int32(max(0, m.clock.Since(c.State.Running.StartedAt.Time).Seconds())) < w.spec.InitialDelaySeconds {
		return true
	}
	if c.Started != nil && *c.Started {
		if w.t == startup {
			return true
		}
	} else if w.t != startup {
		return true
	}

	outcome, output, err := m.runProbe(ctx, &w.spec, w.pod, podIP, &w.container, id)
	var result probeResult
	switch {
	case err != nil:
		plog.FromContext(ctx).Warn("probe errored", "pod", podDesc(w.pod), "container", w.container.Name, "probe", w.t.String(), "err", err)
		m.recordContainerEvent(ctx, w.pod, w.container.Name, corev1.EventTypeWarning, "Unhealthy", w.t.String()+" probe errored: "+err.Error())
		return true
	case outcome == outcomeFailure:
		m.recordContainerEvent(ctx, w.pod, w.container.Name, corev1.EventTypeWarning, "Unhealthy", w.t.String()+" probe failed: "+output)
		result = resultFailure
	case outcome == outcomeWarning:
		m.recordContainerEvent(ctx, w.pod, w.container.Name, corev1.EventTypeWarning, "ProbeWarning", w.t.String()+" probe warning: "+output)
		result = resultSuccess
	case outcome == outcomeUnknown:
		return true
	default:
		result = resultSuccess
	}

	w.mu.Lock()
	if w.lastResult == result {
		w.resultRun++
	} else {
		w.lastResult = result
		w.resultRun = 1
	}
	below := (result == resultFailure && w.resultRun < int(w.spec.FailureThreshold)) ||
		(result == resultSuccess && w.resultRun < int(w.spec.SuccessThreshold))
	if !below && (w.t == liveness || w.t == startup) && result == resultFailure {
		// The container will be restarted: stop probing until a new container shows up.
		w.onHold = true
		w.resultRun = 0
	}
	w.mu.Unlock()
	if below {
		return true
	}
	w.pm.set(w.t, id, result, w.pod.UID)
	return true
}
