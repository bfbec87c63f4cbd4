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

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	if testing.Short() {
		t.Skip("needs root, runc and the CNI plugins")
	}
	testimage.RequireRoot(t)
	runc := testimage.RequireBinary(t, "runc", "runc")
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			t.Skipf("CNI plugin %s missing (apt-get install containernetworking-plugins)", p)
		}
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../cmd/peapod-pause", "../../cmd/peapod-monitor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
		Images: imgs, Snapshots: snapshot.New(d.Snapshots()), Network: netw, Cgroups: cg,
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

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
