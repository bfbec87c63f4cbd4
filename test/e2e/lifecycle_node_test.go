package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestSchedulingAndAdoption checks what the one-node scheduler refuses (pods
// stay Pending with PodScheduled=False and the scheduler's message) and that a
// daemon restart adopts running pods as they are.
func TestSchedulingAndAdoption(t *testing.T) {
	d := startDaemon(t)
	d.cleanupPods("default")
	d.importBusybox()

	pending := func(name, spec, message string) {
		t.Helper()
		d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
%s
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "600"]
    resources: {requests: {cpu: %s}}
`, name, spec, map[bool]string{true: "100000", false: "10m"}[strings.Contains(message, "Insufficient cpu")]))
		p, err := d.getPod("default", name)
		if err != nil {
			t.Fatal(err)
		}
		c := condition(p, corev1.PodScheduled)
		if p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" || c == nil || c.Status != corev1.ConditionFalse ||
			c.Reason != corev1.PodReasonUnschedulable || !strings.HasPrefix(c.Message, message) {
			t.Errorf("%s: phase %s nodeName %q PodScheduled %+v; want Pending, unbound, False/Unschedulable %q", name, p.Status.Phase, p.Spec.NodeName, c, message)
		}
		evs := d.waitEvents("default", name, 10*time.Second, "FailedScheduling")
		if evs[0].Type != corev1.EventTypeWarning || evs[0].Source.Component != "default-scheduler" || !strings.HasPrefix(evs[0].Message, message) {
			t.Errorf("%s: event %+v", name, evs[0])
		}
		if desc := d.mustKubectl("describe", "pod", name); !strings.Contains(desc, "FailedScheduling") || !strings.Contains(desc, "didn't match") && !strings.Contains(desc, "Insufficient") {
			t.Errorf("%s: kubectl describe pod does not show the FailedScheduling event:\n%s", name, desc)
		}
	}
	pending("selector", "  nodeSelector: {disktype: ssd}", "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")
	pending("affinity", `  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/os, operator: In, values: [windows]}]`, "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")
	pending("toobig", "", "0/1 nodes are available: 1 Insufficient cpu.")

	// Pods bound to the node by hand skip the scheduler; the pod manager's
	// admission rejects those that do not fit, as the kubelet does.
	node := strings.TrimPrefix(strings.TrimSpace(d.mustKubectl("get", "nodes", "-o", "name")), "node/")
	rejected := func(name, spec, resources, reason, message string) {
		t.Helper()
		d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
%s
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"], resources: {requests: {%s}}}
`, name, node, spec, resources))
		p := d.waitPod("default", name, 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != reason || !strings.HasPrefix(p.Status.Message, message) {
			t.Errorf("%s: reason %q message %q; want %q %q", name, p.Status.Reason, p.Status.Message, reason, message)
		}
		d.waitEvents("default", name, 10*time.Second, reason)
	}
	rejected("bound-selector", "  nodeSelector: {disktype: ssd}", "", "NodeAffinity",
		"Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")
	rejected("bound-big", "", "memory: 1Pi", "OutOfmemory", "Pod was rejected: Node didn't have enough resource: memory, requested: 1125899906842624, used: 0, capacity: ")

	// A pod waiting for CPU is bound once the pod holding it is deleted.
	cpu := d.mustKubectl("get", "node", node, "-o", "jsonpath={.status.allocatable.cpu}")
	for _, name := range []string{"hog", "waiter"} {
		d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"], resources: {requests: {cpu: "%s"}}}
`, name, cpu))
	}
	d.waitPod("default", "hog", 60*time.Second, "Running", running)
	if p, err := d.getPod("default", "waiter"); err != nil || p.Spec.NodeName != "" || !conditionIs(p, corev1.PodScheduled, corev1.ConditionFalse) {
		t.Fatalf("waiter beside a pod requesting all %s CPUs: %v %+v", cpu, err, p)
	}
	d.mustKubectl("delete", "pod", "hog", "--wait=false")
	p := d.waitPod("default", "waiter", 60*time.Second, "Running once hog is gone", running)
	if !conditionIs(p, corev1.PodScheduled, corev1.ConditionTrue) || p.Spec.NodeName != node {
		t.Errorf("waiter: nodeName %q conditions %+v", p.Spec.NodeName, p.Status.Conditions)
	}
	d.waitEvents("default", "waiter", 10*time.Second, "FailedScheduling", "Scheduled", "Started")
	d.mustKubectl("delete", "pod", "waiter", "--wait=false")

	// A pod that fits (its selector names this node's labels) is scheduled and runs.
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: fits}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/os: linux}
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"]}
`)
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: crashing}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sh", "-c", "exit 1"]}
`)
	before := d.waitPod("default", "fits", 60*time.Second, "Running", running)
	if c := condition(before, corev1.PodScheduled); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("scheduled pod: PodScheduled %+v", c)
	}
	d.waitEvents("default", "fits", 10*time.Second, "Scheduled", "Started")
	crashBefore := d.waitPod("default", "crashing", 60*time.Second, "restarted", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.RestartCount >= 1 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})

	// Restart the daemon on the same root: pods keep running and are adopted.
	d.stop()
	d.start()
	after := d.waitPod("default", "fits", 60*time.Second, "Running after the restart", running)
	// The crash-looping pod restarts again after its back-off: that sync shows the
	// new daemon is at work, and its restart count goes on from where it was.
	prev := containerStatus(crashBefore, "c").RestartCount
	d.waitPod("default", "crashing", 90*time.Second, "restarted by the new daemon", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.RestartCount > prev
	})
	after = d.waitPod("default", "fits", 10*time.Second, "Running", running)
	b, a := containerStatus(before, "c"), containerStatus(after, "c")
	if a.ContainerID != b.ContainerID || a.RestartCount != 0 || !a.State.Running.StartedAt.Equal(&b.State.Running.StartedAt) {
		t.Errorf("after a daemon restart: container %s restarts %d started %v; before %s started %v", a.ContainerID, a.RestartCount, a.State.Running.StartedAt, b.ContainerID, b.State.Running.StartedAt)
	}
	if after.Status.PodIP != before.Status.PodIP || after.Status.StartTime == nil || !after.Status.StartTime.Equal(before.Status.StartTime) {
		t.Errorf("after a daemon restart: podIP %s startTime %v; before %s %v", after.Status.PodIP, after.Status.StartTime, before.Status.PodIP, before.Status.StartTime)
	}
	d.deleteAllPods("default", 60*time.Second)
	d.assertNoLeaks()
}
