package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod-dev/peapod/internal/dirs"
)

// The e2e daemons use a bridge, subnet and cgroup root of their own test
// process, so that they never touch a daemon a user runs on the same machine,
// nor another e2e run, and the leak checks see only what this run made.
var (
	e2eTag        = os.Getpid() % 250
	e2eBridge     = fmt.Sprintf("ppe2e%d", e2eTag)
	e2eSubnet     = fmt.Sprintf("10.203.%d.0/24", e2eTag)
	e2eCgroupRoot = fmt.Sprintf("/peapod-e2e-%d", e2eTag)
)

type daemon struct {
	t          *testing.T
	root       string
	kubeconfig string
	cmd        *exec.Cmd
	out        *syncBuffer
	done       chan struct{}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDaemon runs `peapod serve` in a temporary root and waits for its kubeconfig.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	root := t.TempDir()
	d := &daemon{t: t, root: root, kubeconfig: filepath.Join(root, "kubeconfig")}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.out.String())
			return
		}
		// With every pod gone, a stopped daemon leaves no run directory (and so
		// no netns mount point) behind.
		if ds, err := dirs.New(root); err == nil {
			if _, err := os.Stat(ds.Run); err == nil {
				t.Errorf("run directory %s left after the daemon stopped", ds.Run)
			}
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	os.Remove(d.kubeconfig)
	d.out = &syncBuffer{}
	d.cmd = exec.Command(filepath.Join(binDir, "peapod"), "serve",
		"--root", d.root,
		"--address", "127.0.0.1:0",
		"--cni-bridge", e2eBridge,
		"--cni-subnet", e2eSubnet,
		"--cgroup-root", e2eCgroupRoot,
		"--log-level", "debug")
	d.cmd.Stdout = d.out
	d.cmd.Stderr = d.out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start peapod serve: %v", err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(d.kubeconfig); err == nil {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("peapod serve exited before it was ready:\n%s", d.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("peapod serve wrote no kubeconfig in 30s:\n%s", d.out.String())
		}
	}
}

// stop sends SIGTERM, as a user's service manager would, and waits.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("peapod serve did not stop within 30s of SIGTERM")
	}
	d.cmd = nil
}

// kubectl runs the real kubectl against the daemon.
func (d *daemon) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (d *daemon) mustKubectl(args ...string) string {
	d.t.Helper()
	out, err := d.kubectl(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// kubectlStdin runs kubectl with a manifest on standard input.
func (d *daemon) kubectlStdin(manifest string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) peapod(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(binDir, "peapod"), append([]string{"--root", d.root}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) importBusybox() {
	d.t.Helper()
	if out, err := d.peapod("image", "import", busyboxTar, "busybox"); err != nil {
		d.t.Fatalf("image import: %v\n%s", err, out)
	}
}

func (d *daemon) getPod(ns, name string) (*corev1.Pod, error) {
	out, err := d.kubectl("get", "pod", name, "-n", ns, "-o", "json")
	if err != nil {
		return nil, err
	}
	var p corev1.Pod
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("decode pod: %v", err)
	}
	return &p, nil
}

// waitPod polls until cond holds for the pod; a bound on liveness, not a speed check.
func (d *daemon) waitPod(ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *corev1.Pod
	var lastErr error
	for time.Now().Before(deadline) {
		p, err := d.getPod(ns, name)
		if err == nil && cond(p) {
			return p
		}
		last, lastErr = p, err
		time.Sleep(200 * time.Millisecond)
	}
	status, _ := json.MarshalIndent(last, "", "  ")
	d.t.Fatalf("pod %s/%s: not %s within %v (last error %v):\n%s", ns, name, what, timeout, lastErr, status)
	return nil
}

func (d *daemon) waitGone(ns, name string, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := d.kubectl("get", "pod", name, "-n", ns, "-o", "name")
		if err != nil && strings.Contains(out, "NotFound") || err != nil && strings.Contains(out, "not found") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	d.t.Fatalf("pod %s/%s still exists after %v", ns, name, timeout)
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil || !c.Ready {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) == len(p.Spec.Containers)
}
