package e2e

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubectl debug adds an ephemeral container through pods/ephemeralcontainers;
// the pod manager starts it in the target container's PID namespace, and its
// status and logs are reported as for any container.
func TestKubectlDebugEphemeralContainer(t *testing.T) {
	d := startDaemon(t)
	d.importBusybox()
	const manifest = `
apiVersion: v1
kind: Pod
metadata: {name: debugme}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
`
	if out, err := d.kubectlStdin(manifest, "create", "-f", "-"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	d.waitPod("default", "debugme", 60*time.Second, "Running", running)

	d.mustKubectl("debug", "debugme", "--image=busybox", "--image-pull-policy=IfNotPresent",
		"--target=app", "--container=dbg", "--", "sh", "-c", "echo hi; ps")
	p := d.waitPod("default", "debugme", 60*time.Second, "with the debug container terminated", func(p *corev1.Pod) bool {
		for _, s := range p.Status.EphemeralContainerStatuses {
			if s.Name == "dbg" && s.State.Terminated != nil {
				return true
			}
		}
		return false
	})
	st := p.Status.EphemeralContainerStatuses[0]
	if st.State.Terminated.ExitCode != 0 || st.State.Terminated.Reason != "Completed" {
		t.Errorf("debug container status: %+v", st.State.Terminated)
	}
	if !running(p) {
		t.Errorf("the app container is not running beside the finished debug container: %+v", p.Status)
	}
	logs := d.mustKubectl("logs", "debugme", "-c", "dbg")
	if !strings.HasPrefix(logs, "hi\n") {
		t.Errorf("debug container logs:\n%s", logs)
	}
	// --target: the debug container shares the app container's processes.
	if !strings.Contains(logs, "sleep 3600") {
		t.Errorf("ps in the debug container does not show the target's process:\n%s", logs)
	}
	// The pod's own container was not restarted.
	if p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("app restarted: %+v", p.Status.ContainerStatuses[0])
	}

	d.mustKubectl("delete", "pod", "debugme", "--wait=false")
	d.waitGone("default", "debugme", 30*time.Second)
	d.assertNoLeaks()
}
