package podmanager

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Waiting reasons and condition reasons of the kubelet.
const (
	reasonContainerCreating        = "ContainerCreating"
	reasonPodInitializing          = "PodInitializing"
	reasonContainersNotReady       = "ContainersNotReady"
	reasonContainersNotInitialized = "ContainersNotInitialized"
	reasonReadinessGatesNotReady   = "ReadinessGatesNotReady"
	reasonPodCompleted             = "PodCompleted"
	reasonPodFailed                = "PodFailed"
	reasonUnknownContainerStatuses = "UnknownContainerStatuses"
	reasonContainerStatusUnknown   = "ContainerStatusUnknown"
)

// statusManager is the one writer of pod status: it keeps the last status it
// wrote per pod and writes only changes, through the registry's status subresource.
type statusManager struct {
	store PodStore
	mu    sync.Mutex
	// statuses are the last statuses written.
	statuses map[types.UID]corev1.PodStatus
}

func newStatusManager(store PodStore) *statusManager {
	return &statusManager{store: store, statuses: map[types.UID]corev1.PodStatus{}}
}

// getPodStatus returns the last status written for the pod, or the object's.
func (s *statusManager) getPodStatus(pod *corev1.Pod) corev1.PodStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.statuses[pod.UID]; ok {
		return *st.DeepCopy()
	}
	return *pod.Status.DeepCopy()
}

// getByUID returns the last status written for the pod.
func (s *statusManager) getByUID(uid types.UID) (corev1.PodStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.statuses[uid]
	if !ok {
		return corev1.PodStatus{}, false
	}
	return *st.DeepCopy(), true
}

// containerStatus returns the pod's phase and IP and the named container's
// status, as last written, for a probe: without the copy of the whole status
// getByUID makes, which every probe would pay. The container's status is
// shared, not copied: read it only (written statuses are replaced whole,
// never changed in place). found is false until a status was written; c is
// nil when it has no such container.
func (s *statusManager) containerStatus(uid types.UID, name string) (phase corev1.PodPhase, podIP string, c *corev1.ContainerStatus, found bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.statuses[uid]
	if !ok {
		return "", "", nil, false
	}
	for _, list := range [][]corev1.ContainerStatus{st.ContainerStatuses, st.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				c = &list[i]
			}
		}
	}
	return st.Phase, st.PodIP, c, true
}

// phase returns the phase last written for the pod ("" when none).
func (s *statusManager) phase(uid types.UID) corev1.PodPhase {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statuses[uid].Phase
}

// setPodStatus writes the status when it differs from the last one.
func (s *statusManager) setPodStatus(ctx context.Context, pod *corev1.Pod, status corev1.PodStatus) error {
	old := s.getPodStatus(pod)
	if apiequality.Semantic.DeepEqual(old, status) {
		return nil
	}
	p := pod.DeepCopy()
	p.Status = status
	updated, err := s.store.UpdatePodStatus(ctx, p)
	if err != nil {
		return fmt.Errorf("update status of pod %s: %w", podDesc(pod), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if updated != nil {
		s.statuses[pod.UID] = *status.DeepCopy()
	}
	return nil
}

func (s *statusManager) forget(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.statuses, uid)
}

// reasonCache remembers why a container could not be started (its waiting
// reason and message) until it starts (kubelet's ReasonCache).
type reasonCache struct {
	mu sync.Mutex
	m  map[types.UID]map[string]reasonItem
}

type reasonItem struct {
	err     error
	message string
}

func newReasonCache() *reasonCache { return &reasonCache{m: map[types.UID]map[string]reasonItem{}} }

func (c *reasonCache) add(uid types.UID, name string, err error, message string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[uid] == nil {
		c.m[uid] = map[string]reasonItem{}
	}
	c.m[uid][name] = reasonItem{err: err, message: message}
}

func (c *reasonCache) remove(uid types.UID, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m[uid], name)
}

func (c *reasonCache) get(uid types.UID, name string) (reasonItem, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[uid][name]
	return r, ok
}

func (c *reasonCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, uid)
}

// recordEvent records an event about the pod through the registry.
func (m *Manager) recordEvent(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) {
	if len(pod.Spec.Containers) == 0 {
		// An orphan: no object to attach the event to.
		return
	}
	m.store.RecordEvent(ctx, pod, eventType, reason, message)
}

// containerEventRecorder is implemented by a registry that records events
// about one container (fieldPath "spec.containers{name}"), as the kubelet's.
type containerEventRecorder interface {
	RecordContainerEvent(ctx context.Context, pod *corev1.Pod, fieldPath, eventType, reason, message string)
}

// recordContainerEvent records an event about one of the pod's containers.
func (m *Manager) recordContainerEvent(ctx context.Context, pod *corev1.Pod, name, eventType, reason, message string) {
	r, ok := m.store.(containerEventRecorder)
	if !ok || len(pod.Spec.Containers) == 0 {
		m.recordEvent(ctx, pod, eventType, reason, message)
		return
	}
	r.RecordContainerEvent(ctx, pod, containerFieldPath(pod, name), eventType, reason, message)
}

// containerFieldPath is the kubelet's GenerateContainerRef field path.
func containerFieldPath(pod *corev1.Pod, name string) string {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return "spec.initContainers{" + name + "}"
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return "spec.ephemeralContainers{" + name + "}"
		}
	}
	return "spec.containers{" + name + "}"
}

// generateAPIPodStatus is the kubelet's: the API status from the runtime's
// status, the last written status and the reason cache.
func (m *Manager) generateAPIPodStatus(pod *corev1.Pod, podStatus *runtimePodStatus, podIsTerminal bool) corev1.PodStatus {
	old := m.status.getPodStatus(pod)
	now := metav1.NewTime(m.clock.Now())

	s := corev1.PodStatus{QOSClass: computePodQOS(pod)}
	if old.StartTime != nil && !old.StartTime.IsZero() {
		s.StartTime = old.StartTime.DeepCopy()
	} else {
		s.StartTime = &now
	}
	s.InitContainerStatuses = m.convertToAPIContainerStatuses(pod, podStatus, old.InitContainerStatuses, pod.Spec.InitContainers, false, true)
	s.ContainerStatuses = m.convertToAPIContainerStatuses(pod, podStatus, old.ContainerStatuses, pod.Spec.Containers, len(pod.Spec.InitContainers) > 0, false)
	if len(pod.Spec.EphemeralContainers) > 0 {
		ephemeral := make([]corev1.Container, len(pod.Spec.EphemeralContainers))
		for i := range pod.Spec.EphemeralContainers {
			ephemeral[i] = corev1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		}
		s.EphemeralContainerStatuses = m.convertToAPIContainerStatuses(pod, podStatus, old.EphemeralContainerStatuses, ephemeral, false, false)
	}
	m.probes.updatePodStatus(pod, &s)

	all := append(append([]corev1.ContainerStatus{}, s.ContainerStatuses...), s.InitContainerStatuses...)
	s.Phase = getPhase(pod, all, podIsTerminal, podHasInitialized(pod, podStatus))
	// A terminal phase never changes again.
	if !isTerminalPhase(s.Phase) {
		switch {
		case isTerminalPhase(old.Phase):
			s.Phase = old.Phase
		case isTerminalPhase(pod.Status.Phase):
			s.Phase = pod.Status.Phase
		}
	}
	if s.Phase == old.Phase {
		s.Reason, s.Message = old.Reason, old.Message
	}
	if isTerminalPhase(s.Phase) {
		for i := range s.ContainerStatuses {
			s.ContainerStatuses[i].Ready = false
		}
		for i := range s.InitContainerStatuses {
			if s.InitContainerStatuses[i].State.Terminated == nil || s.InitContainerStatuses[i].State.Terminated.ExitCode != 0 {
				s.InitContainerStatuses[i].Ready = false
			}
		}
	}

	// Conditions owned by others are kept; the kubelet's are generated.
	owned := map[corev1.PodConditionType]bool{
		corev1.PodReadyToStartContainers: true, corev1.PodInitialized: true,
		corev1.PodReady: true, corev1.ContainersReady: true, corev1.PodScheduled: true,
	}
	for _, c := range old.Conditions {
		if !owned[c.Type] {
			s.Conditions = append(s.Conditions, c)
		}
	}
	allStatuses := append(append([]corev1.ContainerStatus{}, s.InitContainerStatuses...), s.ContainerStatuses...)
	readyToStart := corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionFalse}
	if changed, _, _ := podSandboxChanged(pod, podStatus); !changed {
		readyToStart.Status = corev1.ConditionTrue
	}
	s.Conditions = append(s.Conditions,
		readyToStart,
		generatePodInitializedCondition(&pod.Spec, allStatuses, s.Phase),
		generatePodReadyCondition(&pod.Spec, s.Conditions, allStatuses, s.Phase),
		generateContainersReadyCondition(&pod.Spec, allStatuses, s.Phase),
		corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	)
	for i := range s.Conditions {
		updateLastTransitionTime(&s.Conditions[i], now, old.Conditions, pod.Status.Conditions)
	}

	if m.cfg.HostIP != "" {
		s.HostIP = m.cfg.HostIP
		s.HostIPs = []corev1.HostIP{{IP: m.cfg.HostIP}}
	}
	ips := podStatus.IPs
	if pod.Spec.HostNetwork && m.cfg.HostIP != "" {
		ips = []string{m.cfg.HostIP}
	}
	if len(ips) > 0 {
		s.PodIP = ips[0]
		for _, ip := range ips {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip})
		}
	} else if old.PodIP != "" {
		// The sandbox is gone (a terminal pod): keep the address it had.
		s.PodIP, s.PodIPs = old.PodIP, old.PodIPs
	}
	return s
}

// updateLastTransitionTime keeps a condition's transition time while its status
// does not change.
func updateLastTransitionTime(c *corev1.PodCondition, now metav1.Time, olds ...[]corev1.PodCondition) {
	for _, old := range olds {
		for _, oc := range old {
			if oc.Type == c.Type && oc.Status == c.Status && !oc.LastTransitionTime.IsZero() {
				c.LastTransitionTime = oc.LastTransitionTime
				return
			}
		}
	}
	c.LastTransitionTime = now
}

// podHasInitialized: a regular container has run in the runtime.
func podHasInitialized(pod *corev1.Pod, podStatus *runtimePodStatus) bool {
	if len(pod.Spec.InitContainers) == 0 {
		return true
	}
	regular := map[string]bool{}
	for i := range pod.Spec.Containers {
		regular[pod.Spec.Containers[i].Name] = true
	}
	for _, cs := range podStatus.ContainerStatuses {
		if regular[cs.Name] {
			return true
		}
	}
	return false
}

// convertContainerStatus converts one runtime container to the API's.
func (m *Manager) convertContainerStatus(pod *corev1.Pod, cs *containerStatus, old *corev1.ContainerStatus) *corev1.ContainerStatus {
	cid := m.runtimeName + "://" + cs.ID
	st := &corev1.ContainerStatus{
		Name:         cs.Name,
		RestartCount: int32(cs.RestartCount),
		Image:        cs.Image,
		ImageID:      cs.ImageRef,
		ContainerID:  cid,
	}
	switch cs.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(cs.StartedAt)}
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		st.State.Waiting = &corev1.ContainerStateWaiting{}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		reason := cs.Reason
		if reason == "" {
			reason = "Completed"
			if cs.ExitCode != 0 {
				reason = "Error"
			}
		}
		message := cs.Message
		if message == "" {
			message = m.terminationMessage(pod, cs)
		}
		st.State.Terminated = &corev1.ContainerStateTerminated{
			ExitCode:    cs.ExitCode,
			Reason:      reason,
			Message:     message,
			StartedAt:   metav1.NewTime(cs.StartedAt),
			FinishedAt:  metav1.NewTime(cs.FinishedAt),
			ContainerID: cid,
		}
	default:
		if old != nil && old.State.Running != nil {
			st.State.Terminated = &corev1.ContainerStateTerminated{
				Reason:   reasonContainerStatusUnknown,
				Message:  "The container could not be located when the pod was terminated",
				ExitCode: 137,
			}
		} else {
			st.State.Waiting = &corev1.ContainerStateWaiting{}
		}
	}
	return st
}

// convertToAPIContainerStatuses is the kubelet's: default waiting states, the
// newest runtime container as the state and the one before as lastState, and
// the reason cache for containers that will be (re)started.
func (m *Manager) convertToAPIContainerStatuses(pod *corev1.Pod, podStatus *runtimePodStatus, previous []corev1.ContainerStatus, containers []corev1.Container, hasInitContainers, isInitContainer bool) []corev1.ContainerStatus {
	if len(containers) == 0 {
		return nil
	}
	oldStatuses := make(map[string]corev1.ContainerStatus, len(previous))
	for _, s := range previous {
		oldStatuses[s.Name] = s
	}
	defaultWaiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}}
	if hasInitContainers {
		defaultWaiting = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonPodInitializing}}
	}
	statuses := make(map[string]*corev1.ContainerStatus, len(containers))
	for i := range containers {
		c := &containers[i]
		st := &corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: defaultWaiting}
		if old, ok := oldStatuses[c.Name]; ok {
			if old.State.Terminated != nil {
				st = old.DeepCopy()
			} else {
				st.RestartCount = old.RestartCount
				st.LastTerminationState = *old.LastTerminationState.DeepCopy()
			}
		}
		statuses[c.Name] = st
	}

	seen := map[string]int{}
	for _, cs := range podStatus.ContainerStatuses { // newest first
		if _, ok := statuses[cs.Name]; !ok || seen[cs.Name] >= 2 {
			continue
		}
		var oldPtr *corev1.ContainerStatus
		if old, ok := oldStatuses[cs.Name]; ok {
			oldPtr = &old
		}
		st := m.convertContainerStatus(pod, cs, oldPtr)
		if seen[cs.Name] == 0 {
			statuses[cs.Name] = st
		} else {
			statuses[cs.Name].LastTerminationState = st.State
		}
		seen[cs.Name]++
	}

	for i := range containers {
		c := &containers[i]
		if isInitContainer {
			if s := podStatus.FindContainerStatusByName(c.Name); s != nil && s.State == runtimeapi.ContainerState_CONTAINER_EXITED && s.ExitCode == 0 {
				continue
			}
		}
		if !shouldContainerBeRestarted(c, pod, podStatus) {
			continue
		}
		reason, ok := m.reasonCache.get(pod.UID, c.Name)
		if !ok {
			continue
		}
		st := statuses[c.Name]
		if st.State.Terminated != nil {
			st.LastTerminationState = st.State
		}
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason.err.Error(), Message: reason.message}}
	}

	out := make([]corev1.ContainerStatus, 0, len(statuses))
	if isInitContainer {
		for i := range containers {
			out = append(out, *statuses[containers[i].Name])
		}
		return out
	}
	for _, st := range statuses {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func initContainerByName(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// isRestartableInitContainer: a sidecar (init container with restartPolicy Always).
func isRestartableInitContainer(c *corev1.Container) bool {
	return c != nil && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func getContainerStatus(statuses []corev1.ContainerStatus, name string) (corev1.ContainerStatus, bool) {
	for _, s := range statuses {
		if s.Name == name {
			return s, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// getPhase is the kubelet's getPhase: the pod phase from its containers' states.
func getPhase(pod *corev1.Pod, info []corev1.ContainerStatus, podIsTerminal, podHasInitialized bool) corev1.PodPhase {
	spec := pod.Spec
	pendingRestartableInitContainers := 0
	pendingRegularInitContainers := 0
	failedInitialization := 0

	for i := range spec.InitContainers {
		if isRestartableInitContainer(&spec.InitContainers[i]) {
			continue
		}
		cs, ok := getContainerStatus(info, spec.InitContainers[i].Name)
		if !ok {
			pendingRegularInitContainers++
			continue
		}
		switch {
		case cs.State.Running != nil:
			pendingRegularInitContainers++
		case cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode != 0 {
				failedInitialization++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				if cs.LastTerminationState.Terminated.ExitCode != 0 {
					failedInitialization++
				}
			} else {
				pendingRegularInitContainers++
			}
		default:
			pendingRegularInitContainers++
		}
	}

	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		if !isRestartableInitContainer(&spec.InitContainers[i]) {
			continue
		}
		cs, ok := getContainerStatus(info, spec.InitContainers[i].Name)
		if !ok {
			unknown++
			continue
		}
		switch {
		case cs.State.Running != nil:
			if cs.Started == nil || !*cs.Started {
				pendingRestartableInitContainers++
			}
			running++
		case cs.State.Terminated != nil:
			// Terminated sidecars are ignored.
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated == nil {
				pendingRestartableInitContainers++
				waiting++
			}
		default:
			pendingRestartableInitContainers++
			unknown++
		}
	}

	for i := range spec.Containers {
		cs, ok := getContainerStatus(info, spec.Containers[i].Name)
		if !ok {
			unknown++
			continue
		}
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}

	if failedInitialization > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}

	switch {
	case pendingRegularInitContainers > 0 ||
		(pendingRestartableInitContainers > 0 && !podHasInitialized):
		fallthrough
	case waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if podIsTerminal {
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
		if spec.RestartPolicy == corev1.RestartPolicyAlways {
			return corev1.PodRunning
		}
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
		if spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		return corev1.PodRunning
	default:
		return corev1.PodPending
	}
}

// generatePodInitializedCondition is status.GeneratePodInitializedCondition.
func generatePodInitializedCondition(spec *corev1.PodSpec, statuses []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	if len(spec.InitContainers) == 0 {
		return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
	}
	var unknown, incomplete []string
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cs, ok := getContainerStatus(statuses, c.Name)
		if !ok {
			unknown = append(unknown, c.Name)
			continue
		}
		if isRestartableInitContainer(c) {
			if cs.Started == nil || !*cs.Started {
				incomplete = append(incomplete, c.Name)
			}
			continue
		}
		if !cs.Ready {
			incomplete = append(incomplete, c.Name)
		}
	}
	if phase == corev1.PodSucceeded && len(unknown) == 0 {
		return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, Reason: reasonPodCompleted}
	}
	if hasAnyRegularContainerStarted(spec, statuses) {
		return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(incomplete) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with incomplete status: %s", incomplete))
	}
	if len(msgs) > 0 {
		return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionFalse,
			Reason: reasonContainersNotInitialized, Message: strings.Join(msgs, ", ")}
	}
	return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
}

func hasAnyRegularContainerStarted(spec *corev1.PodSpec, statuses []corev1.ContainerStatus) bool {
	for i := range spec.Containers {
		cs, ok := getContainerStatus(statuses, spec.Containers[i].Name)
		if !ok {
			continue
		}
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
			return true
		}
	}
	return false
}

// generateContainersReadyCondition is status.GenerateContainersReadyCondition.
func generateContainersReadyCondition(spec *corev1.PodSpec, statuses []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	if statuses == nil {
		return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: reasonUnknownContainerStatuses}
	}
	var unknown, unready []string
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if !isRestartableInitContainer(c) {
			continue
		}
		if cs, ok := getContainerStatus(statuses, c.Name); ok {
			if !cs.Ready {
				unready = append(unready, c.Name)
			}
		} else {
			unknown = append(unknown, c.Name)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if cs, ok := getContainerStatus(statuses, c.Name); ok {
			if !cs.Ready {
				unready = append(unready, c.Name)
			}
		} else {
			unknown = append(unknown, c.Name)
		}
	}
	if phase == corev1.PodSucceeded && len(unknown) == 0 {
		return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: reasonPodCompleted}
	}
	if phase == corev1.PodFailed {
		return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: reasonPodFailed}
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(unready) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unready status: %s", unready))
	}
	if len(msgs) > 0 {
		return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse,
			Reason: reasonContainersNotReady, Message: strings.Join(msgs, ", ")}
	}
	return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}
}

// generatePodReadyCondition is status.GeneratePodReadyCondition.
func generatePodReadyCondition(spec *corev1.PodSpec, conditions []corev1.PodCondition, statuses []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	cr := generateContainersReadyCondition(spec, statuses, phase)
	if cr.Status != corev1.ConditionTrue {
		return corev1.PodCondition{Type: corev1.PodReady, Status: cr.Status, Reason: cr.Reason, Message: cr.Message}
	}
	var msgs []string
	for _, rg := range spec.ReadinessGates {
		var found *corev1.PodCondition
		for i := range conditions {
			if conditions[i].Type == rg.ConditionType {
				found = &conditions[i]
			}
		}
		if found == nil {
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
		} else if found.Status != corev1.ConditionTrue {
			msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), found.Status))
		}
	}
	if len(msgs) > 0 {
		return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse,
			Reason: reasonReadinessGatesNotReady, Message: strings.Join(msgs, ", ")}
	}
	return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
}
