package e2e

import (
	"io"
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

	// kubectl debug -it: kubectl waits for the container to run and
	// attaches to it on the user's terminal.
	term := startOnTerminal(t, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true", 40, 100, "--kubeconfig", d.kubeconfig,
		"debug", "-it", "debugme", "--image=busybox", "--image-pull-policy=IfNotPresent", "--target=app", "--container=shell", "--", "sh")
	stuck := time.AfterFunc(90*time.Second, func() { term.cmd.Process.Kill() })
	defer stuck.Stop()
	// Typed until the shell answers: kubectl attaches once the container
	// runs, and input before that is not seen by the shell.
	answered := make(chan struct{})
	go func() {
		for {
			select {
			case <-answered:
				return
			case <-time.After(500 * time.Millisecond):
				io.WriteString(term.master, "echo debug-$((6*7)) $(ps | grep -c 'sleep 360[0]')\n")
			}
		}
	}()
	ok := term.waitFor("debug-42 1")
	close(answered)
	if !ok {
		t.Fatalf("kubectl debug -it: no answer from the debug shell:\n%s", term.output())
	}
	term.write("exit\n")
	if code := term.wait(); code != 0 {
		t.Errorf("kubectl debug -it exited %d:\n%s", code, term.output())
	}
	p = d.waitPod("default", "debugme", 30*time.Second, "with the interactive debug container terminated", func(p *corev1.Pod) bool {
		for _, s := range p.Status.EphemeralContainerStatuses {
			if s.Name == "shell" && s.State.Terminated != nil {
				return true
			}
		}
		return false
	})
	if len(p.Status.EphemeralContainerStatuses) != 2 || !running(p) {
		t.Errorf("after kubectl debug -it: %+v", p.Status)
	}

	d.mustKubectl("delete", "pod", "debugme", "--wait=false")
	d.waitGone("default", "debugme", 30*time.Second)
	d.assertNoLeaks()
}
