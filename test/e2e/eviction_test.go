package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestLocalStorageEviction: as the kubelet's eviction manager, the pod
// manager evicts a pod whose emptyDir grows past its sizeLimit, and one whose
// container's writable layer grows past its ephemeral-storage limit: the pod
// stays, Failed with reason Evicted and the kubelet's message, its containers
// killed, an Evicted event recorded; kubectl shows it as Evicted while its
// container stops, and describe shows the reason and message.
func TestLocalStorageEviction(t *testing.T) {
	d := startDaemon(t)
	d.cleanupPods("default")
	d.importBusybox()
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: fill-emptydir}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: data, emptyDir: {sizeLimit: 1Mi}}
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "dd if=/dev/zero of=/data/f bs=1M count=3 && exec sleep 600"]
    volumeMounts: [{name: data, mountPath: /data}]
---
apiVersion: v1
kind: Pod
metadata: {name: fill-rootfs}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=3 && exec sleep 600"]
    resources: {limits: {ephemeral-storage: 1Mi}}
`)
	// kubectl get -w prints every state the pods pass through: Evicted while
	// their containers stop, then the state the stopped container gives.
	watches := map[string]*syncBuffer{}
	for _, name := range []string{"fill-emptydir", "fill-rootfs"} {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", d.kubeconfig, "get", "pod", name, "-w", "--no-headers")
		watches[name] = &syncBuffer{}
		cmd.Stdout = watches[name]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
	}
	for _, tc := range []struct{ pod, message string }{
		{"fill-emptydir", `Usage of EmptyDir volume "data" exceeds the limit "1Mi". `},
		// One container: its limit is the pod's total, which is checked first.
		{"fill-rootfs", "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi. "},
	} {
		// The usage is measured every 10 s (the kubelet's housekeeping).
		p := d.waitPod("default", tc.pod, 90*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if p.Status.Reason != "Evicted" || p.Status.Message != tc.message {
			t.Errorf("%s: reason %q message %q, want Evicted %q", tc.pod, p.Status.Reason, p.Status.Message, tc.message)
		}
		p = d.waitPod("default", tc.pod, 30*time.Second, "with its container killed", func(p *corev1.Pod) bool {
			cs := containerStatus(p, "c")
			return cs != nil && cs.State.Terminated != nil
		})
		evs := d.waitEvents("default", tc.pod, 10*time.Second, "Started", "Evicted", "Killing")
		for _, e := range evs {
			if e.Reason == "Evicted" && (e.Type != corev1.EventTypeWarning || e.Message != tc.message) {
				t.Errorf("%s: Evicted event %s %q, want Warning %q", tc.pod, e.Type, e.Message, tc.message)
			}
		}
		// The stopped container (SIGKILLed, exit 137) gives Error, as with a kubelet.
		var seen string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if seen = watches[tc.pod].String(); strings.Contains(seen, " Error ") {
				break
			}
		}
		if !strings.Contains(seen, " Evicted ") {
			t.Errorf("kubectl get pod %s -w never showed Evicted:\n%s", tc.pod, seen)
		}
		if out := d.mustKubectl("describe", "pod", tc.pod); !regexp.MustCompile(`(?m)^Reason:\s+Evicted$`).MatchString(out) ||
			!strings.Contains(out, strings.TrimSpace(tc.message)) {
			t.Errorf("kubectl describe pod %s: no Reason Evicted and the message:\n%s", tc.pod, out)
		}
	}
	// Evicted pods stay until they are deleted.
	if out := d.mustKubectl("get", "pods", "-o", "name"); !strings.Contains(out, "pod/fill-emptydir") || !strings.Contains(out, "pod/fill-rootfs") {
		t.Errorf("evicted pods gone: %q", out)
	}

	d.deleteAllPods("default", 60*time.Second)
	d.assertNoLeaks()
}
