package podmanager

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestPostStartHookFailureKillsContainer(t *testing.T) {
	pod := testPod("post", func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}}
	})
	env := newTestEnv(t, pod)
	env.rt.InjectError("ExecSync", exitErr(1))
	env.sync(t, pod.UID)
	if !containsEventPrefix(env, `Warning FailedPostStartHook Exec lifecycle hook ([false]) for Container "app" in Pod "post_default(post-uid)" failed`) {
		t.Fatalf("events %v", env.store.eventList())
	}
	if !containsEvent(env, "Normal Killing FailedPostStartHook") {
		t.Fatalf("no Killing event: %v", env.store.eventList())
	}
	if _, ok := env.rt.stops["app"]; !ok {
		t.Fatal("container not stopped after its postStart hook failed")
	}
}

func TestPostStartHookRunsBeforeRunning(t *testing.T) {
	pod := testPod("post2", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	calls := env.rt.GetCalls()
	start, exec := -1, -1
	for i, c := range calls {
		switch c {
		case "StartContainer":
			start = i
		case "ExecSync":
			exec = i
		}
	}
	if start < 0 || exec < start {
		t.Fatalf("postStart not run after StartContainer: %v", calls)
	}
	if st := env.store.pod(pod.UID).Status; st.Phase != corev1.PodRunning {
		t.Fatalf("phase %s", st.Phase)
	}
}

func TestPreStopSleepUsesGracePeriod(t *testing.T) {
	pod := testPod("pre", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 4}}}
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	p := env.store.pod(pod.UID)
	now := metav1.NewTime(env.clock.Now())
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(10))
	env.store.put(p)

	done := make(chan struct{})
	go func() {
		defer close(done)
		env.sync(t, pod.UID)
	}()
	// The hook sleeps 4 s of the fake clock, inside the 10 s grace period.
	for !env.clock.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	env.clock.Step(4 * time.Second)
	<-done
	if env.rt.stops["app"] != 6 {
		t.Fatalf("stop timeout %d, want 10-4", env.rt.stops["app"])
	}
	if env.store.pod(pod.UID) != nil {
		t.Fatal("pod not deleted")
	}
}

func TestActiveDeadlineFailsPod(t *testing.T) {
	pod := testPod("deadline", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To(int64(30)) })
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	rec, _ := env.m.record(pod.UID)
	if rec.requeueAt.Sub(env.clock.Now()) != 30*time.Second {
		t.Fatalf("requeue at %v", rec.requeueAt)
	}
	env.clock.Step(30 * time.Second)
	env.sync(t, pod.UID)
	st := env.store.pod(pod.UID).Status
	if st.Phase != corev1.PodFailed || st.Reason != "DeadlineExceeded" {
		t.Fatalf("phase %s reason %s", st.Phase, st.Reason)
	}
	if _, ok := env.rt.stops["app"]; !ok {
		t.Fatal("container not killed")
	}
	env.sync(t, pod.UID)
	env.sync(t, pod.UID)
	if env.called("RunPodSandbox") != 1 || env.called("CreateContainer") != 1 {
		t.Fatalf("failed pod restarted: %v", env.rt.GetCalls())
	}
	if st := env.store.pod(pod.UID).Status; st.Reason != "DeadlineExceeded" {
		t.Fatalf("reason lost: %+v", st)
	}
}
