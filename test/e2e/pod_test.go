package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The README's demo pod: two containers sharing the pause process's network.
func TestTwoContainerPod(t *testing.T) {
	d := startDaemon(t)
	d.importBusybox()
	manifest, err := os.ReadFile("../../examples/two-containers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := d.kubectlStdin(string(manifest), "create", "-f", "-"); err != nil {
		t.Fatalf("kubectl create: %v\n%s", err, out)
	}
	p := d.waitPod("default", "demo", 60*time.Second, "Running with both containers ready", running)

	table := d.mustKubectl("get", "pods")
	if !regexp.MustCompile(`(?m)^demo\s+2/2\s+Running\s+0\s+\S+\s*$`).MatchString(table) {
		t.Errorf("kubectl get pods:\n%s", table)
	}
	wide := d.mustKubectl("get", "pods", "-o", "wide")
	if !strings.Contains(wide, p.Status.PodIP) || !strings.Contains(wide, p.Spec.NodeName) || p.Status.PodIP == "" {
		t.Errorf("kubectl get pods -o wide lacks IP %q or node %q:\n%s", p.Status.PodIP, p.Spec.NodeName, wide)
	}
	checkRunningStatus(t, p)

	// The client reaches the server on 127.0.0.1: one network namespace.
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs := d.mustKubectl("logs", "demo", "-c", "client")
		if strings.Contains(logs, "hello from demo") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client never reached the server on 127.0.0.1; its log:\n%s", logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if logs := d.mustKubectl("logs", "demo", "-c", "web"); !strings.Contains(logs, "GET") && !strings.Contains(logs, "httpd") {
		t.Logf("web log: %s", logs)
	}

	d.mustKubectl("delete", "pod", "demo", "--grace-period=5")
	d.waitGone("default", "demo", 30*time.Second)
	d.assertNoLeaks()
}

func checkRunningStatus(t *testing.T, p *corev1.Pod) {
	t.Helper()
	conds := map[corev1.PodConditionType]corev1.ConditionStatus{}
	for _, c := range p.Status.Conditions {
		conds[c.Type] = c.Status
	}
	for _, want := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if conds[want] != corev1.ConditionTrue {
			t.Errorf("condition %s = %q, want True", want, conds[want])
		}
	}
	if p.Status.HostIP == "" || p.Status.StartTime == nil || p.Status.QOSClass == "" {
		t.Errorf("status lacks hostIP, startTime or qosClass: %+v", p.Status)
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.ContainerID == "" || c.ImageID == "" || c.Image == "" || c.RestartCount != 0 || c.State.Running == nil {
			t.Errorf("container status %s incomplete: %+v", c.Name, c)
		}
	}
}

// With shareProcessNamespace, pause is PID 1 of every container and reaps the
// orphans they leave behind.
func TestSharedPIDNamespaceReapsZombies(t *testing.T) {
	d := startDaemon(t)
	d.importBusybox()
	const manifest = `
apiVersion: v1
kind: Pod
metadata: {name: reaper}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: orphans
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "for i in $(seq 120); do (sleep 0.2 &); done; sleep 2; echo PS-START; ps -o pid,stat,comm; echo PS-END; exec sleep 3600"]
  - name: idle
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "3600"]
`
	if out, err := d.kubectlStdin(manifest, "create", "-f", "-"); err != nil {
		t.Fatalf("kubectl create: %v\n%s", err, out)
	}
	d.waitPod("default", "reaper", 60*time.Second, "Running", running)
	var logs string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		logs = d.mustKubectl("logs", "reaper", "-c", "orphans")
		if strings.Contains(logs, "PS-END") {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(logs, "PS-END") {
		t.Fatalf("no ps output in the log:\n%s", logs)
	}
	if !regexp.MustCompile(`(?m)^\s*1\s+\S+\s+pause\s*$`).MatchString(logs) {
		t.Errorf("pause is not PID 1 of the shared PID namespace:\n%s", logs)
	}
	if !strings.Contains(logs, "sleep") {
		t.Errorf("the other container's process is not visible:\n%s", logs)
	}
	if z := regexp.MustCompile(`(?m)^\s*\d+\s+Z`).FindAllString(logs, -1); len(z) > 0 {
		t.Errorf("%d zombies in the pod:\n%s", len(z), logs)
	}
	d.mustKubectl("delete", "pod", "reaper", "--grace-period=1")
	d.waitGone("default", "reaper", 30*time.Second)
	d.assertNoLeaks()
}
