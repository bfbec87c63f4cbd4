package podmanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// containerToStart is one container the sync will start.
type containerToStart struct {
	container     *corev1.Container
	containerType string
}

// containerToKill is one running container the sync will stop, and why.
type containerToKill struct {
	status      *containerStatus
	message     string
	gracePeriod int64 // 0: the pod's
}

// probeGracePeriod: a liveness or startup probe's own terminationGracePeriodSeconds.
func probeGracePeriod(p *corev1.Probe, def int64) int64 {
	if p != nil && p.TerminationGracePeriodSeconds != nil {
		return *p.TerminationGracePeriodSeconds
	}
	return def
}

// podActions is what computePodActions decided (kuberuntime_manager.go podActions).
type podActions struct {
	// KillPod: stop every container and the sandbox.
	KillPod bool
	// CreateSandbox: create a new sandbox (the old one, if any, is killed first).
	CreateSandbox bool
	// SandboxID of the existing sandbox when it is kept.
	SandboxID string
	// Attempt of the sandbox to create.
	Attempt uint32
	// InitContainersToStart are indexes into pod.Spec.InitContainers, in order:
	// sidecars to (re)start and at most one regular init container, last.
	InitContainersToStart []int
	// ContainersToStart are indexes into pod.Spec.Containers.
	ContainersToStart []int
	// EphemeralContainersToStart are indexes into pod.Spec.EphemeralContainers.
	EphemeralContainersToStart []int
	// ContainersToKill are running containers to stop (unknown state, changed spec).
	ContainersToKill []containerToKill
}

func shouldRestartOnFailure(pod *corev1.Pod) bool {
	return pod.Spec.RestartPolicy != corev1.RestartPolicyNever
}

func containerSucceeded(c *corev1.Container, podStatus *runtimePodStatus) bool {
	cs := podStatus.FindContainerStatusByName(c.Name)
	return cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_EXITED && cs.ExitCode == 0
}

// shouldContainerBeRestarted is kubecontainer.ShouldContainerBeRestarted.
func shouldContainerBeRestarted(c *corev1.Container, pod *corev1.Pod, podStatus *runtimePodStatus) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	cs := podStatus.FindContainerStatusByName(c.Name)
	if cs == nil {
		return true
	}
	if isEphemeralContainer(pod, c.Name) {
		return false
	}
	switch cs.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return false
	case runtimeapi.ContainerState_CONTAINER_UNKNOWN, runtimeapi.ContainerState_CONTAINER_CREATED:
		return true
	}
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return cs.ExitCode != 0
	}
	return true
}

// podSandboxChanged: is a (new) sandbox needed? (kuberuntime_manager.go)
func podSandboxChanged(pod *corev1.Pod, podStatus *runtimePodStatus) (bool, uint32, string) {
	if len(podStatus.SandboxStatuses) == 0 {
		return true, 0, ""
	}
	ready := 0
	for _, s := range podStatus.SandboxStatuses {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready++
		}
	}
	s := podStatus.SandboxStatuses[0]
	attempt := s.GetMetadata().GetAttempt()
	if ready > 1 {
		return true, attempt + 1, s.Id
	}
	if s.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return true, attempt + 1, s.Id
	}
	if opts := s.GetLinux().GetNamespaces().GetOptions(); opts != nil && opts.Network != namespacesForPod(pod).Network {
		return true, attempt + 1, ""
	}
	if !pod.Spec.HostNetwork && s.GetNetwork().GetIp() == "" {
		return true, attempt + 1, s.Id
	}
	return false, attempt, s.Id
}

// computeInitContainerActions is the kubelet's: regular init containers run one
// at a time, each to success, in order; sidecars (restartPolicy Always) start in
// order, count once started (running, and their startup probe passed), and are
// restarted when they exit or fail their probes. It returns whether
// initialization is done so that the app containers may run.
func (m *Manager) computeInitContainerActions(pod *corev1.Pod, podStatus *runtimePodStatus, changes *podActions) bool {
	inits := pod.Spec.InitContainers
	if len(inits) == 0 {
		return true
	}
	initialized := podHasInitialized(pod, podStatus)
	for i := range inits {
		c := &inits[i]
		restartable := isRestartableInitContainer(c)
		cs := podStatus.FindContainerStatusByName(c.Name)
		if cs == nil {
			if initialized {
				if restartable {
					changes.InitContainersToStart = append(changes.InitContainersToStart, i)
				}
				continue
			}
			changes.InitContainersToStart = append(changes.InitContainersToStart, i)
			return false
		}
		if initialized && !restartable {
			continue
		}
		switch cs.State {
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			// Created but not started (a failed start): start it again.
			changes.InitContainersToStart = append(changes.InitContainersToStart, i)
			if !restartable || !initialized {
				return false
			}
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			if !restartable {
				return false // wait for it to finish
			}
			if c.StartupProbe != nil {
				r, _ := m.probes.get(startup, cs.ID)
				if r == resultFailure {
					changes.ContainersToKill = append(changes.ContainersToKill, containerToKill{status: cs,
						message:     fmt.Sprintf("Init container %s failed startup probe, will be restarted", c.Name),
						gracePeriod: probeGracePeriod(c.StartupProbe, gracePeriodForDeletion(pod))})
					changes.InitContainersToStart = append(changes.InitContainersToStart, i)
				}
				if r != resultSuccess && !initialized {
					return false // not started yet: the next init containers wait
				}
			}
			if r, ok := m.probes.get(liveness, cs.ID); ok && r == resultFailure {
				changes.ContainersToKill = append(changes.ContainersToKill, containerToKill{status: cs,
					message:     fmt.Sprintf("Init container %s failed liveness probe, will be restarted", c.Name),
					gracePeriod: probeGracePeriod(c.LivenessProbe, gracePeriodForDeletion(pod))})
				changes.InitContainersToStart = append(changes.InitContainersToStart, i)
			}
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			if restartable {
				changes.InitContainersToStart = append(changes.InitContainersToStart, i)
				if !initialized {
					return false
				}
				continue
			}
			if cs.ExitCode == 0 {
				continue
			}
			if !shouldRestartOnFailure(pod) {
				changes.KillPod = true
				changes.InitContainersToStart = nil
				return false
			}
			changes.InitContainersToStart = append(changes.InitContainersToStart, i)
			return false
		default:
			changes.ContainersToKill = append(changes.ContainersToKill, containerToKill{status: cs,
				message: "Init container is in unknown state, try killing it before restart"})
			changes.InitContainersToStart = append(changes.InitContainersToStart, i)
			if !restartable || !initialized {
				return false
			}
		}
	}
	return true
}

// computePodActions decides what to do to bring the runtime to the pod's spec.
func (m *Manager) computePodActions(pod *corev1.Pod, podStatus *runtimePodStatus) podActions {
	createSandbox, attempt, sandboxID := podSandboxChanged(pod, podStatus)
	changes := podActions{
		KillPod:       createSandbox,
		CreateSandbox: createSandbox,
		SandboxID:     sandboxID,
		Attempt:       attempt,
	}

	if createSandbox {
		if !shouldRestartOnFailure(pod) && attempt != 0 && len(podStatus.ContainerStatuses) != 0 {
			// The pod ran already and must not be restarted.
			changes.CreateSandbox = false
			return changes
		}
		var toStart []int
		for i := range pod.Spec.Containers {
			if pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure && containerSucceeded(&pod.Spec.Containers[i], podStatus) {
				continue
			}
			toStart = append(toStart, i)
		}
		if len(toStart) == 0 && podHasInitialized(pod, podStatus) {
			changes.CreateSandbox = false
			return changes
		}
		if len(pod.Spec.InitContainers) != 0 {
			changes.InitContainersToStart = []int{0}
			return changes
		}
		changes.ContainersToStart = toStart
		return changes
	}

	// Ephemeral containers start even before initialization is done, once, and
	// are never restarted.
	for i := range pod.Spec.EphemeralContainers {
		if podStatus.FindContainerStatusByName(pod.Spec.EphemeralContainers[i].Name) == nil {
			changes.EphemeralContainersToStart = append(changes.EphemeralContainersToStart, i)
		}
	}

	// Initialization first: app containers wait for the init containers.
	if !m.computeInitContainerActions(pod, podStatus, &changes) {
		return changes
	}

	keepCount := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := podStatus.FindContainerStatusByName(c.Name)
		if cs == nil || cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			if shouldContainerBeRestarted(c, pod, podStatus) {
				changes.ContainersToStart = append(changes.ContainersToStart, i)
				if cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
					changes.ContainersToKill = append(changes.ContainersToKill, containerToKill{status: cs, message: "Container is in unknown state, try killing it before restart"})
				}
			}
			continue
		}
		var message string
		restart := shouldRestartOnFailure(pod)
		gracePeriod := gracePeriodForDeletion(pod)
		if cs.Hash != "" && cs.Hash != containerHash(c) {
			// The spec changed (an image change): restart the container.
			message = fmt.Sprintf("Container %s definition changed", c.Name)
			restart = true
		} else if r, ok := m.probes.get(liveness, cs.ID); ok && r == resultFailure {
			message = fmt.Sprintf("Container %s failed liveness probe", c.Name)
			gracePeriod = probeGracePeriod(c.LivenessProbe, gracePeriod)
		} else if r, ok := m.probes.get(startup, cs.ID); ok && r == resultFailure {
			message = fmt.Sprintf("Container %s failed startup probe", c.Name)
			gracePeriod = probeGracePeriod(c.StartupProbe, gracePeriod)
		} else {
			keepCount++
			continue
		}
		if restart {
			message += ", will be restarted"
			changes.ContainersToStart = append(changes.ContainersToStart, i)
		}
		changes.ContainersToKill = append(changes.ContainersToKill, containerToKill{status: cs, message: message, gracePeriod: gracePeriod})
	}
	if keepCount == 0 && len(changes.ContainersToStart) == 0 {
		changes.KillPod = true
		// Sidecars do not keep a finished pod alive.
		changes.InitContainersToStart = nil
	}
	return changes
}

// syncPod is the kubelet's SyncPod: compute the pod's status and write it, make
// the pod cgroup, then compute the actions and apply them: kill the pod if a new
// sandbox is needed, kill changed containers, create the sandbox, start the next
// init container or the app containers (pulling images, honouring back-off).
// It returns when the pod wants another sync (back-off expiry).
func (m *Manager) syncPod(ctx context.Context, pod *corev1.Pod) (time.Duration, error) {
	podStatus, err := getPodStatus(ctx, m.runtime, pod.UID, pod.Name, pod.Namespace)
	if err != nil {
		return time.Second, err
	}
	if ok, err := m.admit(ctx, pod, podStatus); err != nil {
		return time.Second, err
	} else if !ok {
		return 0, nil
	}
	if exceeded, _ := m.pastActiveDeadline(pod); exceeded {
		return 0, m.failPastDeadline(ctx, pod, podStatus)
	}
	if msg, ok := m.evictions.get(pod.UID); ok {
		return 0, m.evictPod(ctx, pod, podStatus, msg)
	}
	m.probes.addPod(pod)
	changes := m.computePodActions(pod, podStatus)
	plog.FromContext(ctx).Debug("computed pod actions", "createSandbox", changes.CreateSandbox, "killPod", changes.KillPod,
		"init", changes.InitContainersToStart, "start", changes.ContainersToStart, "kill", len(changes.ContainersToKill))

	requeue, applied, syncErr := m.applyPodActions(ctx, pod, podStatus, changes)
	if applied {
		if st, err := getPodStatus(ctx, m.runtime, pod.UID, pod.Name, pod.Namespace); err == nil {
			podStatus = st
		} else {
			syncErr = errors.Join(syncErr, err)
		}
	}
	apiStatus := m.generateAPIPodStatus(pod, podStatus, false)
	if err := m.status.setPodStatus(ctx, pod, apiStatus); err != nil {
		syncErr = errors.Join(syncErr, err)
		requeue = minPositive(requeue, time.Second)
	}
	m.pruneContainers(ctx, pod, podStatus)
	if _, left := m.pastActiveDeadline(pod); left > 0 {
		requeue = minPositive(requeue, left)
	}
	return requeue, syncErr
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	if b <= 0 || a < b {
		return a
	}
	return b
}

// applyPodActions applies the computed actions; applied says whether the runtime
// changed.
func (m *Manager) applyPodActions(ctx context.Context, pod *corev1.Pod, podStatus *runtimePodStatus, changes podActions) (requeue time.Duration, applied bool, err error) {
	log := plog.FromContext(ctx)

	// Step 1: kill the pod when its sandbox changed or nothing should run.
	if changes.KillPod {
		if changes.CreateSandbox && len(podStatus.SandboxStatuses) > 0 {
			log.Info("sandbox changed, the pod will be killed and re-created")
			m.recordEvent(ctx, pod, corev1.EventTypeNormal, eventSandboxChanged, "Pod sandbox changed, it will be killed and re-created.")
		}
		if kerr := m.killPod(ctx, pod, podStatus, gracePeriodForDeletion(pod)); kerr != nil {
			m.recordEvent(ctx, pod, corev1.EventTypeWarning, eventFailedKillPod, "error killing pod: "+kerr.Error())
			return time.Second, true, kerr
		}
		applied = len(podStatus.runningContainers()) > 0 || len(readySandboxes(podStatus)) > 0
		if !changes.CreateSandbox {
			return 0, applied, nil
		}
	} else {
		// Step 2: kill the containers that must go.
		for _, k := range changes.ContainersToKill {
			applied = true
			grace := k.gracePeriod
			if grace == 0 {
				grace = gracePeriodForDeletion(pod)
			}
			if kerr := m.killContainer(ctx, pod, k.status, grace, k.message); kerr != nil {
				return time.Second, applied, kerr
			}
		}
	}

	// Step 3: the pod cgroup, the volumes, then the sandbox.
	cgroupParent, err := m.ensurePodCgroup(pod)
	if err != nil {
		return time.Second, applied, err
	}
	vols, err := m.mountVolumes(ctx, pod, podStatus.IPs)
	if err != nil {
		return 2 * time.Second, applied, err
	}
	sandboxID := changes.SandboxID
	sandboxConfig, err := m.generatePodSandboxConfig(pod, changes.Attempt, cgroupParent)
	if err != nil {
		m.recordEvent(ctx, pod, corev1.EventTypeWarning, eventFailedSandbox, "Failed to generate sandbox config: "+err.Error())
		return time.Second, applied, err
	}
	podIPs := podStatus.IPs
	if changes.CreateSandbox {
		applied = true
		id, err := m.runtime.RunPodSandbox(ctx, sandboxConfig, "")
		if err != nil {
			msg := fmt.Sprintf("Failed to create pod sandbox: %v", err)
			m.recordEvent(ctx, pod, corev1.EventTypeWarning, eventFailedSandbox, msg)
			return backOffPeriod, applied, fmt.Errorf("create sandbox: %w", err)
		}
		sandboxID = id
		log.Info("created sandbox", "sandbox", id, "attempt", changes.Attempt)
		resp, err := m.runtime.PodSandboxStatus(ctx, id, false)
		if err != nil {
			return time.Second, applied, fmt.Errorf("status of new sandbox %s: %w", id, err)
		}
		if !pod.Spec.HostNetwork {
			podIPs = sandboxIPs(resp.GetStatus())
		}
	}

	// Step 4: the next init container, or the app containers.
	start := func(c *corev1.Container, containerType string) {
		applied = true
		if backoff, msg, d := m.doBackOff(ctx, pod, c, podStatus); backoff {
			m.reasonCache.add(pod.UID, c.Name, ErrCrashLoopBackOff, msg)
			requeue = minPositive(requeue, d)
			return
		}
		msg, serr := m.startContainer(ctx, sandboxID, sandboxConfig, &containerToStart{container: c, containerType: containerType}, pod, podStatus, podIPs, vols)
		if serr != nil {
			m.reasonCache.add(pod.UID, c.Name, serr, msg)
			log.Warn("starting container failed", "container", c.Name, "reason", serr.Error(), "message", msg)
			err = errors.Join(err, fmt.Errorf("start container %s: %w: %s", c.Name, serr, msg))
			if errors.Is(serr, ErrImagePull) || errors.Is(serr, ErrImagePullBackOff) {
				// The kubelet's pod worker retries a failed sync after its fixed
				// back-off while the image back-off doubles: the pod alternates
				// between ErrImagePull and a growing run of ImagePullBackOff.
				requeue = minPositive(requeue, backOffPeriod)
			} else {
				requeue = minPositive(requeue, time.Second)
			}
			return
		}
		m.reasonCache.remove(pod.UID, c.Name)
	}
	for _, i := range changes.EphemeralContainersToStart {
		start((*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon), containerTypeEphemeral)
	}
	for _, i := range changes.InitContainersToStart {
		c := &pod.Spec.InitContainers[i]
		start(c, containerTypeInit)
		if !isRestartableInitContainer(c) {
			// One regular init container at a time; the app containers wait.
			return requeue, applied, err
		}
	}
	for _, i := range changes.ContainersToStart {
		start(&pod.Spec.Containers[i], containerTypeRegular)
	}
	return requeue, applied, err
}

// doBackOff: a container that exited is restarted only once its back-off has
// passed (10 s doubling to 300 s; reset after 10 minutes without a restart).
func (m *Manager) doBackOff(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podStatus *runtimePodStatus) (bool, string, time.Duration) {
	var cs *containerStatus
	for _, s := range podStatus.containersByName(c.Name) {
		if s.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			cs = s
			break
		}
	}
	if cs == nil {
		return false, "", 0
	}
	ts := cs.FinishedAt
	key := backOffKey(pod, c)
	if m.backOff.Get(key) == 0 && cs.RestartCount > 0 && !cs.StartedAt.IsZero() && cs.FinishedAt.Sub(cs.StartedAt) <= 2*maxBackOffPeriod {
		// The daemon restarted: rebuild the back-off the restarts earned
		// (10 s after the first restart, doubling to the cap).
		for i := 0; i < min(cs.RestartCount, 6); i++ {
			m.backOff.Next(key, ts)
		}
	}
	if m.backOff.IsInBackOffSince(key, ts) {
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventBackOff,
			fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.Name, podDesc(pod)))
		d := m.backOff.Get(key)
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d, c.Name, podDesc(pod))
		remaining := d - m.clock.Since(ts)
		if remaining < time.Second {
			remaining = time.Second
		}
		return true, msg, remaining
	}
	m.backOff.Next(key, ts)
	return false, "", 0
}

func backOffKey(pod *corev1.Pod, c *corev1.Container) string {
	return fmt.Sprintf("%s_%s_%s_%s", pod.Name, pod.Namespace, pod.UID, c.Name)
}

func readySandboxes(podStatus *runtimePodStatus) []*runtimeapi.PodSandboxStatus {
	var out []*runtimeapi.PodSandboxStatus
	for _, s := range podStatus.SandboxStatuses {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			out = append(out, s)
		}
	}
	return out
}

// killPod stops every running container of the pod, then every sandbox
// (killPodWithSyncResult).
func (m *Manager) killPod(ctx context.Context, pod *corev1.Pod, podStatus *runtimePodStatus, gracePeriod int64) error {
	if err := m.killContainers(ctx, pod, podStatus.runningContainers(), gracePeriod); err != nil {
		return err
	}
	for _, s := range readySandboxes(podStatus) {
		if err := m.runtime.StopPodSandbox(ctx, s.Id); err != nil && !isNotFound(err) {
			return fmt.Errorf("stop sandbox %s: %w", s.Id, err)
		}
	}
	return nil
}

// ensurePodCgroup creates the pod's cgroup under its QoS parent with the
// pod-level limits and returns it as the sandbox's cgroup parent.
func (m *Manager) ensurePodCgroup(pod *corev1.Pod) (string, error) {
	if m.cgroups == nil {
		return "", nil
	}
	path := m.cgroups.PodPath(string(getPodQOS(pod)), string(pod.UID))
	if err := m.cgroups.EnsurePod(path, podCgroupResources(pod, m.cfg.PodPidsLimit)); err != nil {
		return "", fmt.Errorf("pod cgroup %s: %w", path, err)
	}
	return path, nil
}

func (m *Manager) removePodCgroup(pod *corev1.Pod) error {
	if m.cgroups == nil {
		return nil
	}
	var errs []error
	// The QoS class may be unknown (orphans): try every parent.
	for _, qos := range []corev1.PodQOSClass{corev1.PodQOSGuaranteed, corev1.PodQOSBurstable, corev1.PodQOSBestEffort} {
		path := m.cgroups.PodPath(string(qos), string(pod.UID))
		if err := m.cgroups.RemovePod(path); err != nil {
			errs = append(errs, fmt.Errorf("remove pod cgroup %s: %w", path, err))
		}
	}
	return errors.Join(errs...)
}

// terminatePod kills the pod with the grace period, writes its final status,
// then removes its containers, sandboxes and cgroup (SyncTerminatingPod and
// SyncTerminatedPod).
func (m *Manager) terminatePod(ctx context.Context, pod *corev1.Pod, gracePeriod int64, writeFinalStatus bool) error {
	podStatus, err := getPodStatus(ctx, m.runtime, pod.UID, pod.Name, pod.Namespace)
	if err != nil {
		return err
	}
	if err := m.killPod(ctx, pod, podStatus, gracePeriod); err != nil {
		return err
	}
	if podStatus, err = getPodStatus(ctx, m.runtime, pod.UID, pod.Name, pod.Namespace); err != nil {
		return err
	}
	if writeFinalStatus {
		// The final status: every container terminated, a terminal phase.
		if err := m.status.setPodStatus(ctx, pod, m.generateAPIPodStatus(pod, podStatus, true)); err != nil {
			plog.FromContext(ctx).Warn("writing final pod status", "err", err)
		}
	}
	for _, cs := range podStatus.ContainerStatuses {
		if err := m.removeContainer(ctx, pod, cs); err != nil {
			return err
		}
	}
	for _, s := range podStatus.SandboxStatuses {
		if err := m.runtime.RemovePodSandbox(ctx, s.Id); err != nil && !isNotFound(err) {
			return fmt.Errorf("remove sandbox %s: %w", s.Id, err)
		}
	}
	if err := m.removePodCgroup(pod); err != nil {
		return err
	}
	if err := m.cleanupPodDir(pod); err != nil {
		return err
	}
	if m.cfg.LogRoot != "" && pod.UID != "" {
		if err := os.RemoveAll(m.podLogsDirectory(pod)); err != nil {
			return fmt.Errorf("remove pod logs: %w", err)
		}
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			m.backOff.DeleteEntry(backOffKey(pod, &cs[i]))
			m.imageBackOff.DeleteEntry(string(pod.UID) + "_" + cs[i].Image)
			m.prevPullErr.Delete(string(pod.UID) + "_" + cs[i].Image)
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		m.imageBackOff.DeleteEntry(string(pod.UID) + "_" + pod.Spec.EphemeralContainers[i].Image)
		m.prevPullErr.Delete(string(pod.UID) + "_" + pod.Spec.EphemeralContainers[i].Image)
	}
	return nil
}

// stopTerminalPod stops the sandbox of a pod in a terminal phase and removes
// its cgroup; its containers stay for their logs and status until deletion.
func (m *Manager) stopTerminalPod(ctx context.Context, pod *corev1.Pod) error {
	podStatus, err := getPodStatus(ctx, m.runtime, pod.UID, pod.Name, pod.Namespace)
	if err != nil {
		return err
	}
	if err := m.killPod(ctx, pod, podStatus, gracePeriodForDeletion(pod)); err != nil {
		return err
	}
	m.probes.removePod(pod.UID)
	return m.removePodCgroup(pod)
}

// pruneContainers removes exited containers beyond the newest one and one
// previous terminated attempt per container name (kept for `logs --previous`),
// and stopped sandboxes other than the newest that no kept container uses (the
// kubelet's container GC, per pod).
func (m *Manager) pruneContainers(ctx context.Context, pod *corev1.Pod, podStatus *runtimePodStatus) {
	log := plog.FromContext(ctx)
	names := map[string]bool{}
	for _, cs := range podStatus.ContainerStatuses {
		names[cs.Name] = true
	}
	used := map[string]bool{}
	for name := range names {
		list := podStatus.containersByName(name)
		used[list[0].SandboxID] = true
		keptPrevious := false
		for _, cs := range list[1:] {
			if cs.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				used[cs.SandboxID] = true
				continue
			}
			if !keptPrevious && cs.State == runtimeapi.ContainerState_CONTAINER_EXITED {
				keptPrevious = true
				used[cs.SandboxID] = true
				continue
			}
			if err := m.removeContainer(ctx, pod, cs); err != nil {
				log.Warn("removing old container", "container", name, "id", cs.ID, "err", err)
			}
		}
	}
	for i, s := range podStatus.SandboxStatuses {
		if i == 0 || s.State == runtimeapi.PodSandboxState_SANDBOX_READY || used[s.Id] {
			continue
		}
		if err := m.runtime.RemovePodSandbox(ctx, s.Id); err != nil && !isNotFound(err) {
			log.Warn("removing old sandbox", "sandbox", s.Id, "err", err)
		}
	}
}

// pastActiveDeadline is the kubelet's activeDeadlineHandler: has the pod been
// active longer than spec.activeDeadlineSeconds? Else how long until it is.
func (m *Manager) pastActiveDeadline(pod *corev1.Pod) (bool, time.Duration) {
	if pod.Spec.ActiveDeadlineSeconds == nil {
		return false, 0
	}
	start := pod.Status.StartTime
	if st, ok := m.status.getByUID(pod.UID); ok && st.StartTime != nil {
		start = st.StartTime
	}
	if start == nil || start.IsZero() {
		return false, 0
	}
	left := time.Duration(*pod.Spec.ActiveDeadlineSeconds)*time.Second - m.clock.Since(start.Time)
	if left <= 0 {
		return true, 0
	}
	return false, left
}

// failPastDeadline kills the pod and fails it with reason DeadlineExceeded.
func (m *Manager) failPastDeadline(ctx context.Context, pod *corev1.Pod, podStatus *runtimePodStatus) error {
	const msg = "Pod was active on the node longer than the specified deadline"
	if !isTerminalPhase(m.status.phase(pod.UID)) {
		m.recordEvent(ctx, pod, corev1.EventTypeWarning, "DeadlineExceeded", msg)
	}
	if err := m.killPod(ctx, pod, podStatus, gracePeriodForDeletion(pod)); err != nil {
		return err
	}
	st, err := getPodStatus(ctx, m.runtime, pod.UID, pod.Name, pod.Namespace)
	if err != nil {
		return err
	}
	s := m.generateAPIPodStatus(pod, st, true)
	s.Phase, s.Reason, s.Message = corev1.PodFailed, "DeadlineExceeded", msg
	return m.status.setPodStatus(ctx, pod, s)
}

func isEphemeralContainer(pod *corev1.Pod, name string) bool {
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return true
		}
	}
	return false
}
