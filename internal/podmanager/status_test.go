package podmanager

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func running(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, Started: ptr.To(true)}
}

func startedFalse(s corev1.ContainerStatus) corev1.ContainerStatus {
	s.Started = ptr.To(false)
	return s
}

func terminated(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

func waiting(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
}

func waitingAfter(name string, code int32) corev1.ContainerStatus {
	s := waiting(name)
	s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}
	return s
}

func TestGetPhase(t *testing.T) {
	two := func(policy corev1.RestartPolicy) *corev1.Pod {
		return testPod("p", func(p *corev1.Pod) {
			p.Spec.RestartPolicy = policy
			p.Spec.Containers = []corev1.Container{{Name: "a"}, {Name: "b"}}
		})
	}
	withInit := func(policy corev1.RestartPolicy) *corev1.Pod {
		p := two(policy)
		p.Spec.InitContainers = []corev1.Container{{Name: "i"}}
		return p
	}
	withSidecar := func() *corev1.Pod {
		p := two(corev1.RestartPolicyAlways)
		p.Spec.InitContainers = []corev1.Container{{Name: "s", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
		return p
	}
	for _, tc := range []struct {
		name        string
		pod         *corev1.Pod
		statuses    []corev1.ContainerStatus
		terminal    bool
		initialized bool
		want        corev1.PodPhase
	}{
		{"no statuses", two(corev1.RestartPolicyAlways), nil, false, true, corev1.PodPending},
		{"all running", two(corev1.RestartPolicyAlways), []corev1.ContainerStatus{running("a"), running("b")}, false, true, corev1.PodRunning},
		{"one waiting", two(corev1.RestartPolicyAlways), []corev1.ContainerStatus{running("a"), waiting("b")}, false, true, corev1.PodPending},
		{"one unknown", two(corev1.RestartPolicyAlways), []corev1.ContainerStatus{running("a")}, false, true, corev1.PodPending},
		{"restarting after crash", two(corev1.RestartPolicyAlways), []corev1.ContainerStatus{running("a"), waitingAfter("b", 1)}, false, true, corev1.PodRunning},
		{"all stopped, Always", two(corev1.RestartPolicyAlways), []corev1.ContainerStatus{terminated("a", 0), terminated("b", 1)}, false, true, corev1.PodRunning},
		{"all stopped ok, Always, terminal", two(corev1.RestartPolicyAlways), []corev1.ContainerStatus{terminated("a", 0), terminated("b", 0)}, true, true, corev1.PodSucceeded},
		{"stopped with failure, Always, terminal", two(corev1.RestartPolicyAlways), []corev1.ContainerStatus{terminated("a", 0), terminated("b", 137)}, true, true, corev1.PodFailed},
		{"all succeeded, OnFailure", two(corev1.RestartPolicyOnFailure), []corev1.ContainerStatus{terminated("a", 0), terminated("b", 0)}, false, true, corev1.PodSucceeded},
		{"one failed, OnFailure", two(corev1.RestartPolicyOnFailure), []corev1.ContainerStatus{terminated("a", 0), terminated("b", 1)}, false, true, corev1.PodRunning},
		{"one failed, Never", two(corev1.RestartPolicyNever), []corev1.ContainerStatus{terminated("a", 0), terminated("b", 1)}, false, true, corev1.PodFailed},
		{"all succeeded, Never", two(corev1.RestartPolicyNever), []corev1.ContainerStatus{terminated("a", 0), terminated("b", 0)}, false, true, corev1.PodSucceeded},
		{"one still running, Never", two(corev1.RestartPolicyNever), []corev1.ContainerStatus{running("a"), terminated("b", 1)}, false, true, corev1.PodRunning},
		{"init running", withInit(corev1.RestartPolicyAlways), []corev1.ContainerStatus{running("i"), waiting("a"), waiting("b")}, false, false, corev1.PodPending},
		{"init failed, Never", withInit(corev1.RestartPolicyNever), []corev1.ContainerStatus{terminated("i", 1), waiting("a"), waiting("b")}, false, false, corev1.PodFailed},
		{"init failed, Always (restarting)", withInit(corev1.RestartPolicyAlways), []corev1.ContainerStatus{waitingAfter("i", 1), waiting("a"), waiting("b")}, false, false, corev1.PodPending},
		{"init done, apps running", withInit(corev1.RestartPolicyAlways), []corev1.ContainerStatus{terminated("i", 0), running("a"), running("b")}, false, true, corev1.PodRunning},
		{"sidecar not started yet", withSidecar(), []corev1.ContainerStatus{startedFalse(running("s")), waiting("a"), waiting("b")}, false, false, corev1.PodPending},
		{"sidecar and apps running", withSidecar(), []corev1.ContainerStatus{running("s"), running("a"), running("b")}, false, true, corev1.PodRunning},
		{"apps done, sidecar stopped, terminal", withSidecar(), []corev1.ContainerStatus{terminated("s", 137), terminated("a", 0), terminated("b", 0)}, true, true, corev1.PodSucceeded},
	} {
		if got := getPhase(tc.pod, tc.statuses, tc.terminal, tc.initialized); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestConditionsKeepTransitionTimes(t *testing.T) {
	pod := testPod("cond")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	first := env.store.pod(pod.UID).Status
	ready := condition(first, corev1.PodReady)
	env.clock.Step(60e9)
	env.sync(t, pod.UID)
	if got := condition(env.store.pod(pod.UID).Status, corev1.PodReady); !got.LastTransitionTime.Equal(&ready.LastTransitionTime) {
		t.Fatalf("Ready transition time moved without a change: %v -> %v", ready.LastTransitionTime, got.LastTransitionTime)
	}
	env.exit(t, "app", 1)
	env.rt.InjectError("StartContainer", errString("boom"))
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	got := condition(st, corev1.PodReady)
	if got.Status != corev1.ConditionFalse || got.LastTransitionTime.Equal(&ready.LastTransitionTime) || got.Message != "containers with unready status: [app]" {
		t.Fatalf("Ready after a failed restart: %+v", got)
	}
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "RunContainerError" || w.Message != "boom" {
		t.Fatalf("waiting %+v, want RunContainerError", w)
	}
	// The next attempt waits for the back-off; then the status stays as it is
	// and is not written again.
	env.sync(t, pod.UID)
	if w := env.store.pod(pod.UID).Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "CrashLoopBackOff" {
		t.Fatalf("waiting %+v, want CrashLoopBackOff", w)
	}
	n := env.store.updates
	env.sync(t, pod.UID)
	if env.store.updates != n {
		t.Fatalf("unchanged status written again")
	}
}

func TestSandboxRecreatedWhenNotReady(t *testing.T) {
	pod := testPod("sb")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	env.rt.Lock()
	for _, s := range env.rt.Sandboxes {
		s.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}
	for _, c := range env.rt.Containers {
		c.State = runtimeapi.ContainerState_CONTAINER_EXITED
		c.ExitCode = 137
		c.FinishedAt = env.clock.Now().UnixNano()
	}
	env.rt.Unlock()
	env.sync(t, pod.UID)
	var readyAttempt1 bool
	for _, s := range env.sandboxes() {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY && s.Metadata.Attempt == 1 {
			readyAttempt1 = true
		}
	}
	if !readyAttempt1 {
		t.Fatal("no new sandbox with attempt 1")
	}
	st := env.store.pod(pod.UID).Status
	if cs := st.ContainerStatuses[0]; cs.State.Running == nil || cs.RestartCount != 1 {
		t.Fatalf("container after sandbox re-creation %+v", cs)
	}
	if !containsEvent(env, "Normal SandboxChanged Pod sandbox changed, it will be killed and re-created.") {
		t.Fatalf("events %v", env.store.eventList())
	}
}

func containsEvent(env *testEnv, e string) bool {
	for _, got := range env.store.eventList() {
		if got == e {
			return true
		}
	}
	return false
}
