package podmanager

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/peapod-dev/peapod/internal/cgroups"
	"github.com/peapod-dev/peapod/internal/cri/inproc"
	"github.com/peapod-dev/peapod/internal/criimage"
	"github.com/peapod-dev/peapod/internal/criruntime"
	"github.com/peapod-dev/peapod/internal/dirs"
	"github.com/peapod-dev/peapod/internal/image"
	"github.com/peapod-dev/peapod/internal/network"
	"github.com/peapod-dev/peapod/internal/oci"
	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/testimage"
)

// TestRealRuntime runs the pod manager against the real runtime (runc,
// overlayfs, CNI, cgroups) in-process, with a fake registry: a two-container
// pod whose client reaches the server on 127.0.0.1, its logs, a crash with a
// restart, then a graceful deletion that leaves nothing behind.
func TestRealRuntime(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, store, root, cgRoot, done := startRealManager(t, ctx)

	pod := testPod("web", func(p *corev1.Pod) {
		p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(5))
		p.Spec.Containers = []corev1.Container{
			{Name: "server", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", "mkdir -p /www && echo hello-from-server > /www/index.html && exec httpd -f -p 8080 -h /www"}},
			{Name: "client", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent, TerminationMessagePath: "/dev/termination-log",
				Command: []string{"sh", "-c", "until wget -q -O- http://127.0.0.1:8080/; do sleep 0.2; done; echo bye > /dev/termination-log; exit 3"}},
		}
	})
	store.put(pod)
	eventually(t, "the client ran and restarted once", func() bool {
		p := store.pod(pod.UID)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "client" && cs.RestartCount >= 1 && cs.LastTerminationState.Terminated != nil {
				return true
			}
		}
		return false
	})
	p := store.pod(pod.UID)
	if p.Status.PodIP == "" || !strings.HasPrefix(p.Status.PodIP, "10.202.0.") {
		t.Errorf("pod IP %q", p.Status.PodIP)
	}
	var client corev1.ContainerStatus
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "client" {
			client = cs
		}
		if cs.Name == "server" && (cs.State.Running == nil || !cs.Ready) {
			t.Errorf("server %+v", cs)
		}
	}
	if term := client.LastTerminationState.Terminated; term.ExitCode != 3 || term.Message != "bye\n" || term.Reason != "Error" {
		t.Errorf("client's last termination %+v", term)
	}
	var logs bytes.Buffer
	if err := m.StreamLogs(ctx, p, &corev1.PodLogOptions{Container: "client", Previous: true}, &logs); err != nil || !strings.Contains(logs.String(), "hello-from-server") {
		t.Errorf("client logs %q %v", logs.String(), err)
	}

	// Graceful deletion: httpd is PID 1 of its container and ignores SIGTERM,
	// so it is killed when the 2 s grace period runs out.
	p = store.pod(pod.UID)
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(2))
	store.put(p)
	eventually(t, "the pod is deleted", func() bool { return store.pod(pod.UID) == nil })
	sbs, err := m.runtime.ListPodSandbox(ctx, nil)
	if err != nil || len(sbs) != 0 {
		t.Errorf("sandboxes left: %v %v", sbs, err)
	}
	if _, err := os.Stat(filepath.Join(root, "pods", string(pod.UID))); !os.IsNotExist(err) {
		t.Errorf("pod directory left: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", cgRoot, "besteffort", "pod"+string(pod.UID))); !os.IsNotExist(err) {
		t.Errorf("pod cgroup left: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// startRealManager starts the pod manager over the real runtime on a fresh
// root; the runtime is closed and the test bridge and cgroups removed at cleanup.
func startRealManager(t *testing.T, ctx context.Context) (*Manager, *fakeStore, string, string, chan error) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root, runc and the CNI plugins")
	}
	testimage.RequireRoot(t)
	runc := testimage.RequireBinary(t, "runc", "runc")
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CNI plugin %s missing (apt-get install containernetworking-plugins)", p)
			}
			t.Skipf("CNI plugin %s missing (apt-get install containernetworking-plugins)", p)
		}
	}
	bin := t.TempDir()
	if out, err := exec.Command("bash", "../../scripts/build.sh", bin).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	root := t.TempDir()
	d, err := dirs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cgRoot := "/peapod-pm-test-" + filepath.Base(root)
	cg, err := cgroups.New(cgRoot)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := image.Open(d.Images())
	if err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := testimage.RootfsTar(&tarball); err != nil {
		t.Fatal(err)
	}
	if _, err := imgs.Import(ctx, &tarball, "docker.io/library/busybox:latest"); err != nil {
		t.Fatal(err)
	}
	const bridge = "pppm0"
	netw, err := network.New(network.Config{PluginDirs: []string{"/usr/lib/cni"}, ConfDir: d.CNIConf(), CacheDir: d.CNICache(),
		IPAMDir: d.CNIIPAM(), Bridge: bridge, Subnet: "10.202.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := criruntime.New(ctx, criruntime.Config{
		Root: d.Root, RunDir: d.Run, Runc: &oci.Runc{Binary: runc, Root: d.RuncRoot()},
		MonitorBinary: filepath.Join(bin, "peapod-monitor"), PauseBinary: filepath.Join(bin, "peapod-pause"),
		EnterBinary: filepath.Join(bin, "peapod-enter"),
		Images:      imgs, Snapshots: snapshot.New(d.Snapshots()), Network: netw, Cgroups: cg,
		Clock: clock.RealClock{}, Logger: logger.With("component", "runtime"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.Close()
		_ = unix.Unmount(d.Netns(), unix.MNT_DETACH)
		_ = exec.Command("ip", "link", "del", bridge).Run()
		for _, c := range []string{"", "cpu", "memory", "pids"} {
			for _, sub := range []string{"/besteffort", "/burstable", ""} {
				_ = os.Remove(filepath.Join("/sys/fs/cgroup", c, cgRoot+sub))
			}
		}
	})

	store := newFakeStore()
	m := New(Config{
		NodeName: "node1", Runtime: inproc.NewRuntimeService(rt), Images: inproc.NewImageService(criimage.New(imgs, clock.RealClock{})),
		Pods: store, Cgroups: cg, LogRoot: d.Logs(), PodsDir: filepath.Join(root, "pods"), Logger: logger.With("component", "podmanager"),
	})
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	eventually(t, "the watch is open", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return len(store.watchers) > 0
	})

	return m, store, root, cgRoot, done
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestRealRuntimeProbesAndHooks: an http readiness probe on the pod IP, an exec
// liveness probe through the runtime that restarts the container, postStart and
// preStop hooks observed through a hostPath volume.
func TestRealRuntimeProbesAndHooks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, store, _, _, done := startRealManager(t, ctx)
	data := t.TempDir()
	pod := testPod("probed", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: data, Type: ptr.To(corev1.HostPathDirectory)}}}}
		p.Spec.Containers = []corev1.Container{{
			Name: "app", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{"sh", "-c", "trap 'echo term >> /data/log; exit 0' TERM; echo main >> /data/log; " +
				"mkdir -p /www && echo ok > /www/index.html && httpd -p 8080 -h /www; while true; do sleep 0.1; done"},
			Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
				HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromString("http")}}},
			LivenessProbe: &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1, ProbeHandler: corev1.ProbeHandler{
				Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "test ! -e /tmp/die"}}}},
			Lifecycle: &corev1.Lifecycle{
				PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo poststart >> /data/log"}}},
				PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop >> /data/log"}}},
			},
		}}
	})
	store.put(pod)
	eventually(t, "the pod is ready", func() bool {
		p := store.pod(pod.UID)
		return condition(p.Status, corev1.PodReady).Status == corev1.ConditionTrue
	})
	cid := trimContainerID(store.pod(pod.UID).Status.ContainerStatuses[0].ContainerID)
	if _, _, err := m.runtime.ExecSync(ctx, cid, []string{"touch", "/tmp/die"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the liveness probe restarts the container", func() bool {
		cs := store.pod(pod.UID).Status.ContainerStatuses[0]
		return cs.RestartCount == 1 && cs.State.Running != nil && cs.Ready
	})
	events := strings.Join(store.eventList(), "\n")
	for _, want := range []string{"Warning Unhealthy Liveness probe failed", "Normal Killing Container app failed liveness probe, will be restarted"} {
		if !strings.Contains(events, want) {
			t.Errorf("no event %q in\n%s", want, events)
		}
	}
	p := store.pod(pod.UID)
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To(int64(10))
	store.put(p)
	eventually(t, "the pod is deleted", func() bool { return store.pod(pod.UID) == nil })
	log, _ := os.ReadFile(filepath.Join(data, "log"))
	lines := strings.Fields(string(log))
	// Two runs; each postStart after start, the preStop before the TERM.
	if n := strings.Count(string(log), "poststart"); n != 2 {
		t.Errorf("postStart ran %d times: %q", n, lines)
	}
	if len(lines) < 2 || lines[len(lines)-2] != "prestop" || lines[len(lines)-1] != "term" {
		t.Errorf("log %q, want prestop then term at the end", lines)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
