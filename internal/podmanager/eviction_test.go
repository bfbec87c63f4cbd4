package podmanager

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func writeBytes(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

func countEvents(env *testEnv, prefix string) int {
	n := 0
	for _, e := range env.store.eventList() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// TestEvictionLoopEmptyDir drives the eviction loop with the fake clock: a
// disk emptyDir under its sizeLimit is left alone, over it the pod is
// evicted once — event, containers killed, Failed/Evicted with the kubelet's
// message — and stays.
func TestEvictionLoopEmptyDir(t *testing.T) {
	pod := testPod("evict", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("1Mi"))}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	})
	env := newTestEnv(t, pod)
	env.sync(t, pod.UID)
	if got := env.m.status.phase(pod.UID); got != corev1.PodRunning {
		t.Fatalf("phase %s before eviction", got)
	}
	dir := env.m.volumeDir(pod, "empty-dir", "data")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.m.evictionLoop(ctx)
	}()
	defer func() { cancel(); <-done }()
	// pass steps the fake clock by one period and waits until the loop has
	// checked and sleeps again.
	pass := func() {
		t.Helper()
		eventually(t, "eviction loop waiting", env.clock.HasWaiters)
		env.clock.Step(defaultEvictionPeriod)
		eventually(t, "eviction pass done", env.clock.HasWaiters)
	}

	writeBytes(t, filepath.Join(dir, "small"), 512<<10)
	pass()
	if msg, ok := env.m.evictions.get(pod.UID); ok {
		t.Fatalf("evicted under the limit: %s", msg)
	}

	writeBytes(t, filepath.Join(dir, "big"), 3<<20)
	pass()
	const want = `Usage of EmptyDir volume "data" exceeds the limit "1Mi". `
	if msg, _ := env.m.evictions.get(pod.UID); msg != want {
		t.Fatalf("pending eviction %q, want %q", msg, want)
	}
	if !slices.Contains(env.store.eventList(), "Warning Evicted "+want) {
		t.Errorf("events %q: no Evicted", env.store.eventList())
	}

	// The pod's worker carries it out.
	env.sync(t, pod.UID)
	p := env.store.pod(pod.UID)
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "Evicted" || p.Status.Message != want {
		t.Fatalf("status %s/%s/%q, want Failed/Evicted/%q", p.Status.Phase, p.Status.Reason, p.Status.Message, want)
	}
	if got := env.rt.stops["app"]; got != minimumGracePeriodInSeconds {
		t.Errorf("container stopped with timeout %d, want %d", got, minimumGracePeriodInSeconds)
	}
	if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Terminated == nil {
		t.Errorf("container statuses %+v, want terminated", cs)
	}
	if _, ok := env.m.evictions.get(pod.UID); ok {
		t.Error("eviction still pending after it was carried out")
	}

	// Later passes and syncs leave the failed pod as it is.
	pass()
	env.sync(t, pod.UID)
	if n := countEvents(env, "Warning Evicted"); n != 1 {
		t.Errorf("%d Evicted events, want 1", n)
	}
	if p := env.store.pod(pod.UID); p.Status.Reason != "Evicted" || len(env.store.deletedList()) != 0 {
		t.Errorf("evicted pod changed: reason %q, deleted %v", p.Status.Reason, env.store.deletedList())
	}
}

// TestLocalStorageLimits: the pod and container ephemeral-storage limits,
// measured from the runtime's writable layer stats, the logs and the volumes.
func TestLocalStorageLimits(t *testing.T) {
	withLimit := func(q string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse(q)}}
	}
	withSide := func(app, side string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = withLimit(app)
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "busybox:1.36", Resources: withLimit(side)})
		}
	}
	for _, tc := range []struct {
		name     string
		pod      func(*corev1.Pod)
		layer    uint64 // writable layer of container app
		logs     int    // bytes in app's log directory
		scratch  int    // bytes in the emptyDir without a sizeLimit
		wantEvic string
	}{
		{
			name: "container writable layer", layer: 5 << 20,
			pod:      withSide("4Mi", "10Mi"),
			wantEvic: `Container app exceeded its local ephemeral storage limit "4Mi". `,
		},
		{
			name: "container logs", layer: 1 << 20, logs: 4 << 20,
			pod:      withSide("4Mi", "10Mi"),
			wantEvic: `Container app exceeded its local ephemeral storage limit "4Mi". `,
		},
		{
			name: "under the container limit", layer: 1 << 20, logs: 1 << 20,
			pod: withSide("4Mi", "10Mi"),
		},
		{
			name: "pod total with an emptyDir", layer: 2 << 20, scratch: 3 << 20,
			pod:      withSide("3Mi", "2Mi"),
			wantEvic: "Pod ephemeral local storage usage exceeds the total limit of containers 5Mi. ",
		},
		{
			// One container: its limit is the pod's, which the kubelet checks first.
			name: "single container", layer: 5 << 20,
			pod:      func(p *corev1.Pod) { p.Spec.Containers[0].Resources = withLimit("4Mi") },
			wantEvic: "Pod ephemeral local storage usage exceeds the total limit of containers 4Mi. ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod("limits", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
				p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
				tc.pod(p)
			})
			env := newTestEnv(t, pod)
			env.sync(t, pod.UID)
			app := env.containers("app")
			if len(app) != 1 {
				t.Fatalf("app containers %d; events %v", len(app), env.store.eventList())
			}
			env.rt.SetFakeContainerStats([]*runtimeapi.ContainerStats{{
				Attributes:    &runtimeapi.ContainerAttributes{Id: app[0].Id, Metadata: app[0].Metadata},
				WritableLayer: &runtimeapi.FilesystemUsage{UsedBytes: &runtimeapi.UInt64Value{Value: tc.layer}},
			}})
			logDir := filepath.Join(env.m.podLogsDirectory(pod), "app")
			if err := os.MkdirAll(logDir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeBytes(t, filepath.Join(logDir, "0.log"), tc.logs)
			writeBytes(t, filepath.Join(env.m.volumeDir(pod, "empty-dir", "scratch"), "f"), tc.scratch)

			env.m.checkLocalStorage(context.Background())
			msg, _ := env.m.evictions.get(pod.UID)
			if msg != tc.wantEvic {
				t.Fatalf("eviction %q, want %q", msg, tc.wantEvic)
			}
		})
	}
}
