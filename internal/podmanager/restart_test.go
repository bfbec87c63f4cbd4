package podmanager

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func TestBackOffSurvivesDaemonRestart(t *testing.T) {
	pod := testPod("again")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	for i := 0; i < 3; i++ { // restarts 1..3 (back-off 10 s, 20 s between them)
		env.exit(t, "app", 1)
		env.clock.Step(5 * time.Minute)
		env.sync(t, pod.UID)
	}
	if cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]; cs.RestartCount != 3 || cs.State.Running == nil {
		t.Fatalf("before the restart %+v", cs)
	}
	// The fake runtime's StartedAt is real time: make the last run short.
	env.rt.Lock()
	for _, c := range env.rt.Containers {
		c.StartedAt = env.clock.Now().UnixNano()
	}
	env.rt.Unlock()
	env.exit(t, "app", 1)

	// A new manager (the daemon restarted) over the same runtime and store.
	m2 := New(Config{NodeName: "node1", Runtime: env.rt, Images: env.images, Pods: env.store, LogRoot: env.logRoot,
		ResolvConf: "/nonexistent", Clock: env.clock, Logger: env.m.log})
	if err := m2.init(context.Background()); err != nil {
		t.Fatal(err)
	}
	m2.pods[pod.UID] = &podRecord{pod: env.store.pod(pod.UID)}
	m2.syncOnce(context.Background(), pod.UID)
	cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || !strings.HasPrefix(cs.State.Waiting.Message, "back-off 40s ") {
		t.Fatalf("after the daemon restart %+v, want CrashLoopBackOff with back-off 40s", cs.State)
	}
	if cs.RestartCount != 3 {
		t.Fatalf("restart count %d", cs.RestartCount)
	}
}

func TestImageChangeRestartsContainer(t *testing.T) {
	pod := testPod("img2")
	env := newTestEnv(t, pod)
	env.images.SetFakeImages([]string{"busybox:1.36", "busybox:1.37"})
	env.sync(t, pod.UID)
	p := env.store.pod(pod.UID)
	p.Spec.Containers[0].Image = "busybox:1.37"
	env.store.put(p)
	env.sync(t, pod.UID)
	if _, ok := env.rt.stops["app"]; !ok {
		t.Fatal("old container not stopped")
	}
	cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]
	if cs.Image != "busybox:1.37" || cs.State.Running == nil || cs.RestartCount != 1 {
		t.Fatalf("after the image change %+v", cs)
	}
	if !containsEvent(env, "Normal Killing Container app definition changed, will be restarted") {
		t.Fatalf("events %v", env.store.eventList())
	}
	env.sync(t, pod.UID)
	if env.called("CreateContainer") != 2 {
		t.Fatalf("restarted again: %d creates", env.called("CreateContainer"))
	}
}

func TestEphemeralContainer(t *testing.T) {
	pod := testPod("dbg")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	p := env.store.pod(pod.UID)
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent},
		TargetContainerName:      "app",
	}}
	env.store.put(p)
	env.sync(t, pod.UID)
	cfg := env.rt.config("debugger")
	if cfg == nil {
		t.Fatalf("ephemeral container not created: %v", env.store.eventList())
	}
	ns := cfg.Linux.SecurityContext.NamespaceOptions
	if ns.Pid != runtimeapi.NamespaceMode_TARGET || ns.TargetId != env.containers("app")[0].Id || cfg.Labels[labelContainerType] != containerTypeEphemeral {
		t.Fatalf("namespaces %v labels %v", ns, cfg.Labels)
	}
	st := env.store.pod(pod.UID).Status
	if len(st.EphemeralContainerStatuses) != 1 || st.EphemeralContainerStatuses[0].State.Running == nil {
		t.Fatalf("ephemeral status %+v", st.EphemeralContainerStatuses)
	}
	// It exits and is never restarted; the pod keeps running.
	env.exit(t, "debugger", 0)
	env.sync(t, pod.UID)
	env.clock.Step(time.Hour)
	env.sync(t, pod.UID)
	if n := len(env.containers("debugger")); n != 1 {
		t.Fatalf("%d debugger containers", n)
	}
	st = env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodRunning || st.EphemeralContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("status %+v", st)
	}
}

func TestRunAsNonRoot(t *testing.T) {
	pod := testPod("nonroot", func(p *corev1.Pod) {
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
	})
	env := newTestEnv(t, pod)
	env.images.Lock()
	env.images.Images["busybox:1.36"].Uid = &runtimeapi.Int64Value{Value: 0}
	env.images.Unlock()
	env.sync(t, pod.UID)
	w := env.store.pod(pod.UID).Status.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "CreateContainerConfigError" ||
		w.Message != `container has runAsNonRoot and image will run as root (pod: "nonroot_default(nonroot-uid)", container: app)` {
		t.Fatalf("waiting %+v", w)
	}
	p := env.store.pod(pod.UID)
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To(int64(1000))}
	env.store.put(p)
	env.sync(t, pod.UID)
	if cs := env.store.pod(pod.UID).Status.ContainerStatuses[0]; cs.State.Running == nil {
		t.Fatalf("with runAsUser 1000: %+v", cs.State)
	}
}
