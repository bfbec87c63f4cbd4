package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Invalid pods are refused with a Status naming the field, and nothing is created.
func TestInvalidPodsRefused(t *testing.T) {
	d := startDaemon(t)
	cases := []struct {
		name, manifest, want string
	}{
		{"missing image", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"noimage"},"spec":{"containers":[{"name":"a"}]}}`,
			`spec.containers[0].image: Required value`},
		{"duplicate names", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"dup"},"spec":{"containers":[{"name":"a","image":"busybox"},{"name":"a","image":"busybox"}]}}`,
			`spec.containers[1].name: Duplicate value: "a"`},
		{"invalid name", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"a","image":"busybox"}]}}`,
			`metadata.name: Invalid value: "Bad_Name"`},
		{"no containers", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"empty"},"spec":{"containers":[]}}`,
			`spec.containers: Required value`},
	}
	for _, c := range cases {
		out, err := d.kubectlStdin(c.manifest, "create", "-f", "-")
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: kubectl create err=%v, want an error naming %q; got:\n%s", c.name, err, c.want, out)
		}
	}
	// Unknown fields, under kubectl's default strict field validation.
	out, err := d.kubectlStdin(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"unknown"},"spec":{"bogus":1,"containers":[{"name":"a","image":"busybox"}]}}`,
		"create", "-f", "-")
	if err == nil || !strings.Contains(out, `unknown field "spec.bogus"`) {
		t.Errorf("unknown field: err=%v, want an error naming spec.bogus; got:\n%s", err, out)
	}
	if list := d.mustKubectl("get", "pods", "-o", "name"); strings.TrimSpace(list) != "" {
		t.Errorf("refused pods were created: %s", list)
	}
}

// A pod whose image is absent waits with the kubelet's reason; nothing else breaks.
func TestMissingImage(t *testing.T) {
	d := startDaemon(t)
	const manifest = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"noimg"},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"a","image":"example.test/absent:1","imagePullPolicy":"Never"}]}}`
	if out, err := d.kubectlStdin(manifest, "create", "-f", "-"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	p := d.waitPod("default", "noimg", 30*time.Second, "waiting with ErrImageNeverPull", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ErrImageNeverPull"
	})
	if p.Status.Phase != corev1.PodPending || p.Status.ContainerStatuses[0].State.Waiting.Message == "" {
		t.Errorf("want Pending with a message, got %s %+v", p.Status.Phase, p.Status.ContainerStatuses[0].State.Waiting)
	}
	if table := d.mustKubectl("get", "pods"); !strings.Contains(table, "ErrImageNeverPull") {
		t.Errorf("kubectl get pods does not show the reason:\n%s", table)
	}
	d.mustKubectl("delete", "pod", "noimg")
	d.waitGone("default", "noimg", 30*time.Second)
	d.assertNoLeaks()
}

// refusedServe runs cmd, a peapod serve expected to refuse to start, and
// returns its combined output and error. exited is false, and the process
// killed, if it still runs after 20 s.
func refusedServe(cmd *exec.Cmd) (out []byte, exited bool, err error) {
	done := make(chan struct{})
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
		return out, true, err
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		return out, false, err
	}
}

// peapod serve refuses to start when a prerequisite is missing, naming it.
func TestServePreflight(t *testing.T) {
	empty := t.TempDir()
	cases := []struct {
		name string
		args []string
		cred bool
		want string
	}{
		{"no runc", []string{"--runc", filepath.Join(empty, "runc")}, false, "runc"},
		{"no CNI plugins", []string{"--cni-plugin-dir", empty}, false, "containernetworking-plugins"},
		{"not root", nil, true, "root"},
	}
	for _, c := range cases {
		args := append([]string{"serve", "--root", t.TempDir(), "--address", "127.0.0.1:0"}, c.args...)
		cmd := exec.Command(filepath.Join(binDir, "peapod"), args...)
		if c.cred {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			cmd.Dir = os.TempDir()
		}
		out, exited, err := refusedServe(cmd)
		if !exited {
			t.Errorf("%s: peapod serve kept running", c.name)
			continue
		}
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: err=%v, want an error naming %q; output:\n%s", c.name, err, c.want, out)
		}
	}
}

// A second daemon on a root that one already serves is refused: the two would
// clean up each other's sandboxes.
func TestSecondDaemonOnRootRefused(t *testing.T) {
	d := startDaemon(t)
	cmd := exec.Command(filepath.Join(binDir, "peapod"), "serve", "--root", d.root, "--address", "127.0.0.1:0",
		"--cni-bridge", e2eBridge, "--cni-subnet", e2eSubnet, "--cgroup-root", e2eCgroupRoot)
	out, exited, err := refusedServe(cmd)
	if !exited {
		t.Fatalf("a second peapod serve on %s kept running", d.root)
	}
	if err == nil || !strings.Contains(string(out), "another peapod serve is running") {
		t.Errorf("second daemon: err=%v, want a refusal naming the running daemon; output:\n%s", err, out)
	}
	if _, err := d.kubectl("get", "namespaces"); err != nil {
		t.Errorf("the first daemon stopped serving: %v", err)
	}
}
