package podmanager

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func writeLog(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString("2026-01-02T03:04:05.000000000Z stdout F " + l + "\n")
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStreamLogs(t *testing.T) {
	pod := testPod("logs")
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	dir := filepath.Join(env.logRoot, "default_logs_logs-uid", "app")
	writeLog(t, filepath.Join(dir, "0.log"), "first-1", "first-2", "first-3")

	var out bytes.Buffer
	if err := env.m.StreamLogs(context.Background(), env.store.pod(pod.UID), &corev1.PodLogOptions{}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "first-1\nfirst-2\nfirst-3\n" {
		t.Fatalf("logs %q", out.String())
	}
	out.Reset()
	if err := env.m.StreamLogs(context.Background(), env.store.pod(pod.UID), &corev1.PodLogOptions{TailLines: ptr.To(int64(1))}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "first-3\n" {
		t.Fatalf("tail 1: %q", out.String())
	}
	if err := env.m.StreamLogs(context.Background(), env.store.pod(pod.UID), &corev1.PodLogOptions{Previous: true}, &out); !errors.Is(err, ErrLogsUnavailable) {
		t.Fatalf("previous before a restart: %v", err)
	}

	// After a restart: the current attempt and --previous.
	env.exit(t, "app", 1)
	env.sync(t, pod.UID)
	writeLog(t, filepath.Join(dir, "1.log"), "second")
	out.Reset()
	if err := env.m.StreamLogs(context.Background(), env.store.pod(pod.UID), &corev1.PodLogOptions{Container: "app"}, &out); err != nil || out.String() != "second\n" {
		t.Fatalf("current after restart: %q %v", out.String(), err)
	}
	out.Reset()
	if err := env.m.StreamLogs(context.Background(), env.store.pod(pod.UID), &corev1.PodLogOptions{Previous: true, LimitBytes: ptr.To(int64(7))}, &out); err != nil || out.String() != "first-1" {
		t.Fatalf("previous: %q %v", out.String(), err)
	}
	if err := env.m.StreamLogs(context.Background(), env.store.pod(pod.UID), &corev1.PodLogOptions{Container: "nope"}, &out); !errors.Is(err, ErrLogsUnavailable) {
		t.Fatalf("unknown container: %v", err)
	}
}

func TestStreamLogsWaitingContainer(t *testing.T) {
	pod := testPod("wait", func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = "absent:1"
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	err := env.m.StreamLogs(context.Background(), env.store.pod(pod.UID), nil, &bytes.Buffer{})
	if !errors.Is(err, ErrLogsUnavailable) || err.Error() != `container "app" in pod "wait" is waiting to start: ErrImageNeverPull` {
		t.Fatalf("err %v", err)
	}
}

// eventually polls cond; it fails the test only when cond never holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

func TestRunWatchesPodsAndDeletes(t *testing.T) {
	pod := testPod("run")
	other := testPod("elsewhere", func(p *corev1.Pod) { p.Spec.NodeName = "node2" })
	env := newTestEnv(t, other)
	env.m.pods = map[types.UID]*podRecord{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.m.Run(ctx) }()

	eventually(t, "the watch is open", func() bool {
		env.store.mu.Lock()
		defer env.store.mu.Unlock()
		return len(env.store.watchers) > 0
	})
	env.store.put(pod)
	eventually(t, "the pod runs", func() bool {
		p := env.store.pod(pod.UID)
		return p != nil && p.Status.Phase == corev1.PodRunning
	})
	if p := env.store.pod(other.UID); p.Status.Phase != "" {
		t.Fatalf("a pod of another node was synced: %+v", p.Status)
	}

	// A crash is noticed by the relist (the fake clock drives its period).
	env.exit(t, "app", 3)
	eventually(t, "the crashed container is restarted", func() bool {
		env.clock.Step(time.Second)
		p := env.store.pod(pod.UID)
		return p != nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1 &&
			p.Status.ContainerStatuses[0].State.Running != nil
	})

	p := env.store.pod(pod.UID)
	now := metav1.NewTime(env.clock.Now())
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(30))
	env.store.put(p)
	eventually(t, "the pod is deleted", func() bool { return env.store.pod(pod.UID) == nil })
	if env.rt.stops["app"] != 30 {
		t.Fatalf("stop timeout %d", env.rt.stops["app"])
	}
	eventually(t, "the worker ends", func() bool {
		env.m.mu.Lock()
		defer env.m.mu.Unlock()
		return len(env.m.workers) == 0 && len(env.m.pods) == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDeletionInterruptsABlockedSync(t *testing.T) {
	pod := testPod("stuck", func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1000}}}
	})
	env := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.m.Run(ctx) }()
	eventually(t, "the watch is open", func() bool {
		env.store.mu.Lock()
		defer env.store.mu.Unlock()
		return len(env.store.watchers) > 0
	})
	env.store.put(pod)
	eventually(t, "the container runs its postStart hook", func() bool {
		c := env.containers("app")
		return len(c) == 1 && env.called("StartContainer") == 1
	})
	p := env.store.pod(pod.UID)
	now := metav1.NewTime(env.clock.Now())
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(3))
	env.store.put(p)
	eventually(t, "the pod is deleted although its hook never ends", func() bool { return env.store.pod(pod.UID) == nil })
	env.rt.mu.Lock()
	stop := env.rt.stops["app"]
	env.rt.mu.Unlock()
	if stop != 3 {
		t.Fatalf("stop timeout %d", stop)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
