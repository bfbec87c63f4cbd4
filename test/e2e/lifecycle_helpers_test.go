package e2e

import (
	"encoding/json"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// forTest returns the daemon as seen by a subtest, so that its helpers fail
// the subtest (and may run in parallel with others sharing the daemon).
func (d *daemon) forTest(t *testing.T) *daemon {
	c := *d
	c.t = t
	return &c
}

// cleanupPods deletes the namespace's pods when the test ends, before the
// daemon stops (stopping it leaves pods running), so a failed test leaves
// nothing behind for the next.
func (d *daemon) cleanupPods(ns string) {
	d.t.Cleanup(func() {
		d.kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=1")
	})
}

// create creates the manifest with the real kubectl.
func (d *daemon) create(manifest string) {
	d.t.Helper()
	if out, err := d.kubectlStdin(manifest, "create", "--validate=false", "-f", "-"); err != nil {
		d.t.Fatalf("kubectl create: %v\n%s\n%s", err, out, manifest)
	}
}

// podEvents returns the events about a pod in the order they were first
// recorded (the registry names events <pod>.<hex nanoseconds>).
func (d *daemon) podEvents(ns, name string) []corev1.Event {
	d.t.Helper()
	out := d.mustKubectl("get", "events", "-n", ns, "-o", "json")
	var list corev1.EventList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.t.Fatalf("decode events: %v", err)
	}
	var evs []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.InvolvedObject.Kind == "Pod" {
			evs = append(evs, e)
		}
	}
	seq := func(e corev1.Event) uint64 {
		n, _ := strconv.ParseUint(e.Name[strings.LastIndexByte(e.Name, '.')+1:], 16, 64)
		return n
	}
	sort.Slice(evs, func(i, j int) bool { return seq(evs[i]) < seq(evs[j]) })
	return evs
}

// waitEvents polls until the pod's events hold the given reasons in that order.
func (d *daemon) waitEvents(ns, name string, timeout time.Duration, reasons ...string) []corev1.Event {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	var evs []corev1.Event
	for {
		evs = d.podEvents(ns, name)
		i := 0
		for _, e := range evs {
			if i < len(reasons) && e.Reason == reasons[i] {
				i++
			}
		}
		if i == len(reasons) {
			return evs
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Reason+": "+e.Message)
	}
	d.t.Fatalf("pod %s/%s: events %v not seen in order within %v; events:\n%s", ns, name, reasons, timeout, strings.Join(got, "\n"))
	return nil
}

// hostDir makes a directory on the host for a hostPath volume; test pods use
// it to report what happened in order, and the test to steer them.
func hostDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitFile polls until the file's lines satisfy cond and returns them.
func waitFile(t *testing.T, path string, timeout time.Duration, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lines []string
	for {
		b, _ := os.ReadFile(path)
		lines = strings.Fields(string(b))
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not %s within %v: %q", path, what, timeout, lines)
	return nil
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// indexOf returns the position of s in lines, or -1.
func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func conditionIs(p *corev1.Pod, t corev1.PodConditionType, s corev1.ConditionStatus) bool {
	c := condition(p, t)
	return c != nil && c.Status == s
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// deleteAllPods deletes every pod of the namespace and waits until they are gone.
func (d *daemon) deleteAllPods(ns string, timeout time.Duration) {
	d.t.Helper()
	d.mustKubectl("delete", "pods", "--all", "-n", ns, "--wait=false")
	deadline := time.Now().Add(timeout)
	for {
		out := d.mustKubectl("get", "pods", "-n", ns, "-o", "name")
		if strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("pods of %s not gone within %v:\n%s", ns, timeout, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
