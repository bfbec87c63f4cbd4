package podmanager

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/diskusage"
	plog "github.com/peapod-dev/peapod/internal/log"
)

// The eviction manager's local storage limits (pkg/kubelet/eviction): reason
// and messages exactly as the kubelet words them.
const (
	evictionReason                      = "Evicted"
	emptyDirMessageFmt                  = "Usage of EmptyDir volume %q exceeds the limit %q. "
	podEphemeralStorageMessageFmt       = "Pod ephemeral local storage usage exceeds the total limit of containers %s. "
	containerEphemeralStorageMessageFmt = "Container %s exceeded its local ephemeral storage limit %q. "

	// defaultEvictionPeriod is the kubelet's housekeeping interval, at which
	// its eviction manager measures usage.
	defaultEvictionPeriod = 10 * time.Second
	// systemCriticalPriority: pods at or above it are never evicted (IsCriticalPod).
	systemCriticalPriority = 2 * 1000000000
)

// evictions holds the pods the eviction check decided to evict and whose
// worker has not carried it out yet: pod UID → the eviction message.
type evictions struct {
	mu      sync.Mutex
	pending map[types.UID]string
}

func (e *evictions) add(uid types.UID, msg string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.pending[uid]; ok {
		return false
	}
	if e.pending == nil {
		e.pending = map[types.UID]string{}
	}
	e.pending[uid] = msg
	return true
}

func (e *evictions) get(uid types.UID) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	msg, ok := e.pending[uid]
	return msg, ok
}

func (e *evictions) done(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.pending, uid)
}

// prune forgets the evictions of pods that are gone before their worker
// carried them out (deleted meanwhile).
func (e *evictions) prune(known func(types.UID) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for uid := range e.pending {
		if !known(uid) {
			delete(e.pending, uid)
		}
	}
}

// evictionLoop measures the local storage of the active pods every
// EvictionPeriod and evicts those over a limit (the eviction manager's
// synchronize, local storage part).
func (m *Manager) evictionLoop(ctx context.Context) {
	for m.sleep(ctx, m.cfg.EvictionPeriod) {
		m.checkLocalStorage(ctx)
	}
}

// checkLocalStorage is the kubelet's localStorageEviction: for each active pod
// with a limit, an emptyDir over its sizeLimit, then the pod over its
// ephemeral-storage limit, then a container over its own. The pod's worker is
// woken to kill it and fail it; the Evicted event is recorded now, once.
func (m *Manager) checkLocalStorage(ctx context.Context) {
	log := plog.FromContext(ctx)
	m.evictions.prune(func(uid types.UID) bool { _, ok := m.record(uid); return ok })
	for _, pod := range m.activePods() {
		if _, ok := m.evictions.get(pod.UID); ok || !hasLocalStorageLimit(pod) || isCriticalPod(pod) {
			continue
		}
		usage, err := m.localStorageUsage(ctx, pod)
		if err != nil {
			log.Warn("measuring local storage", "pod", podDesc(pod), "err", err)
			continue
		}
		msg := localStorageViolation(pod, usage)
		if msg == "" || !m.evictions.add(pod.UID, msg) {
			continue
		}
		log.Info("evicting pod", "pod", podDesc(pod), "message", msg)
		m.recordEvent(ctx, pod, corev1.EventTypeWarning, evictionReason, msg)
		m.wake(pod.UID)
	}
}

// activePods are the pods the node runs that are not terminating or finished.
func (m *Manager) activePods() []*corev1.Pod {
	m.mu.Lock()
	var pods []*corev1.Pod
	for _, rec := range m.pods {
		if rec.pod != nil && !rec.orphan && !rec.removed && !rec.terminated && rec.pod.DeletionTimestamp == nil &&
			!isTerminalPhase(rec.pod.Status.Phase) {
			pods = append(pods, rec.pod)
		}
	}
	m.mu.Unlock()
	active := pods[:0]
	for _, pod := range pods {
		if !isTerminalPhase(m.status.phase(pod.UID)) {
			active = append(active, pod)
		}
	}
	return active
}

// evictPod carries out a pending eviction in the pod's worker: its containers
// are killed with a zero grace period (raised to the minimum by killContainer),
// and it stays as Failed with reason Evicted and the message. As the kubelet's
// syncTerminatingPod, the status is written before the kill (kubectl shows the
// pod as Evicted while its containers stop) and again with them terminated.
func (m *Manager) evictPod(ctx context.Context, pod *corev1.Pod, podStatus *runtimePodStatus, msg string) error {
	s := m.generateAPIPodStatus(pod, podStatus, false)
	s.Phase, s.Reason, s.Message = corev1.PodFailed, evictionReason, msg
	if err := m.status.setPodStatus(ctx, pod, s); err != nil {
		return err
	}
	if err := m.killPod(ctx, pod, podStatus, 0); err != nil {
		return err
	}
	st, err := getPodStatus(ctx, m.runtime, pod.UID, pod.Name, pod.Namespace)
	if err != nil {
		return err
	}
	s = m.generateAPIPodStatus(pod, st, true)
	s.Phase, s.Reason, s.Message = corev1.PodFailed, evictionReason, msg
	if err := m.status.setPodStatus(ctx, pod, s); err != nil {
		return err
	}
	m.evictions.done(pod.UID)
	return nil
}

func isCriticalPod(pod *corev1.Pod) bool {
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority
}

// hasLocalStorageLimit: something of the pod is limited, so it is worth
// measuring. A memory emptyDir cannot outgrow its sizeLimit: it is the tmpfs size.
func hasLocalStorageLimit(pod *corev1.Pod) bool {
	for i := range pod.Spec.Volumes {
		if ed := pod.Spec.Volumes[i].EmptyDir; ed != nil && ed.Medium == corev1.StorageMediumDefault && ed.SizeLimit != nil && ed.SizeLimit.Sign() > 0 {
			return true
		}
	}
	_, ok := podEphemeralStorageLimit(pod)
	return ok
}

// localStorage is a pod's measured usage in bytes.
type localStorage struct {
	volumes    map[string]int64 // disk-backed local ephemeral volumes by name
	containers map[string]int64 // writable layer + logs by container name
	total      int64            // containers, volumes and /etc/hosts
}

// localStorageViolation returns the eviction message of the first limit the
// usage exceeds, in the kubelet's order, or "".
func localStorageViolation(pod *corev1.Pod, u localStorage) string {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Sign() <= 0 {
			continue
		}
		if used, ok := u.volumes[v.Name]; ok && resource.NewQuantity(used, resource.BinarySI).Cmp(*v.EmptyDir.SizeLimit) > 0 {
			return fmt.Sprintf(emptyDirMessageFmt, v.Name, v.EmptyDir.SizeLimit.String())
		}
	}
	if limit, ok := podEphemeralStorageLimit(pod); ok && resource.NewQuantity(u.total, resource.BinarySI).Cmp(limit) > 0 {
		return fmt.Sprintf(podEphemeralStorageMessageFmt, limit.String())
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		limit := c.Resources.Limits.StorageEphemeral()
		if limit.IsZero() {
			continue
		}
		if used, ok := u.containers[c.Name]; ok && limit.Cmp(*resource.NewQuantity(used, resource.BinarySI)) < 0 {
			return fmt.Sprintf(containerEphemeralStorageMessageFmt, c.Name, limit.String())
		}
	}
	return ""
}

// podEphemeralStorageLimit is resourcehelper.PodLimits for ephemeral-storage:
// app containers and sidecars summed, at least any init container with the
// sidecars started before it, plus the overhead; ok when any container sets it.
func podEphemeralStorageLimit(pod *corev1.Pod) (resource.Quantity, bool) {
	var sum, sidecars, initMax resource.Quantity
	found := false
	limitOf := func(c *corev1.Container) resource.Quantity {
		q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]
		found = found || ok
		return q
	}
	for i := range pod.Spec.Containers {
		sum.Add(limitOf(&pod.Spec.Containers[i]))
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		q := limitOf(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum.Add(q)
			sidecars.Add(q)
			q = sidecars.DeepCopy()
		} else {
			q.Add(sidecars)
		}
		if q.Cmp(initMax) > 0 {
			initMax = q
		}
	}
	if initMax.Cmp(sum) > 0 {
		sum = initMax
	}
	if !found {
		return resource.Quantity{}, false
	}
	if o, ok := pod.Spec.Overhead[corev1.ResourceEphemeralStorage]; ok {
		sum.Add(o)
	}
	return sum, true
}

// localStorageUsage measures what the kubelet's stats summary reports for the
// pod: each container's writable layer (the runtime's CRI stats) and logs, the
// disk-backed local ephemeral volumes (emptyDir of the default medium,
// configMap: IsLocalEphemeralVolume) and the pod's /etc/hosts.
func (m *Manager) localStorageUsage(ctx context.Context, pod *corev1.Pod) (localStorage, error) {
	u := localStorage{volumes: map[string]int64{}, containers: map[string]int64{}}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		var dir string
		switch {
		case v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumDefault:
			dir = m.volumeDir(pod, "empty-dir", v.Name)
		case v.ConfigMap != nil:
			dir = m.volumeDir(pod, "configmap", v.Name)
		default:
			continue
		}
		du, err := diskusage.Of(dir)
		if err != nil {
			return u, err
		}
		used := int64(du.Bytes)
		u.volumes[v.Name] = used
		u.total += used
	}
	if _, ok := podEphemeralStorageLimit(pod); !ok {
		return u, nil // containers matter only for ephemeral-storage limits
	}
	stats, err := m.runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{
		LabelSelector: map[string]string{labelPodUID: string(pod.UID)},
	})
	if err != nil {
		return u, fmt.Errorf("container stats: %w", err)
	}
	// The newest attempt of each container, as the stats summary keeps.
	newest := map[string]*runtimeapi.ContainerStats{}
	for _, s := range stats {
		name := s.GetAttributes().GetMetadata().GetName()
		if cur, ok := newest[name]; !ok || s.GetAttributes().GetMetadata().GetAttempt() > cur.GetAttributes().GetMetadata().GetAttempt() {
			newest[name] = s
		}
	}
	for name, s := range newest {
		used := int64(s.GetWritableLayer().GetUsedBytes().GetValue())
		if m.cfg.LogRoot != "" {
			logs, err := diskusage.Of(filepath.Join(m.podLogsDirectory(pod), name))
			if err != nil {
				return u, err
			}
			used += int64(logs.Bytes)
		}
		u.containers[name] = used
		u.total += used
	}
	if m.cfg.PodsDir != "" {
		hosts, err := diskusage.Of(filepath.Join(m.podDir(pod), "etc-hosts"))
		if err != nil {
			return u, err
		}
		u.total += int64(hosts.Bytes)
	}
	return u, nil
}
