package e2e

import (
	"strings"
	"testing"
	"time"
)

// Deletion is graceful: SIGTERM, then SIGKILL when the grace period runs out.
func TestGracefulDeletion(t *testing.T) {
	d := startDaemon(t)
	d.importBusybox()
	const manifest = `
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  containers:
  - name: ignores-term
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'echo got TERM' TERM; while true; do sleep 1; done"]
`
	if out, err := d.kubectlStdin(manifest, "create", "-f", "-"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	d.waitPod("default", "stubborn", 60*time.Second, "Running", running)
	start := time.Now()
	d.mustKubectl("delete", "pod", "stubborn", "--grace-period=3", "--wait=false")
	p, err := d.getPod("default", "stubborn")
	if err == nil && (p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 3) {
		t.Errorf("a deleted pod has deletionTimestamp and deletionGracePeriodSeconds=3: %+v", p.ObjectMeta)
	}
	if err == nil {
		if table := d.mustKubectl("get", "pods"); !strings.Contains(table, "Terminating") {
			t.Errorf("kubectl get pods does not show Terminating:\n%s", table)
		}
	}
	d.waitGone("default", "stubborn", 30*time.Second)
	if elapsed := time.Since(start); elapsed < 3*time.Second {
		t.Errorf("pod ignoring SIGTERM was gone after %v, before its 3s grace period", elapsed)
	}
	d.assertNoLeaks()

	// --force --grace-period=0 removes the object at once; the containers still die.
	if out, err := d.kubectlStdin(strings.Replace(manifest, "stubborn", "forced", 1), "create", "-f", "-"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	d.waitPod("default", "forced", 60*time.Second, "Running", running)
	d.mustKubectl("delete", "pod", "forced", "--force", "--grace-period=0")
	if out, err := d.kubectl("get", "pod", "forced"); err == nil {
		t.Errorf("force-deleted pod still exists:\n%s", out)
	}
	d.assertNoLeaks()
}

func TestNamespaces(t *testing.T) {
	d := startDaemon(t)
	d.importBusybox()
	if out := d.mustKubectl("get", "namespaces"); !strings.Contains(out, "default") {
		t.Fatalf("no default namespace:\n%s", out)
	}
	d.mustKubectl("create", "namespace", "team-a")
	const manifest = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"a","image":"busybox","imagePullPolicy":"Never","command":["sleep","3600"]}]}}`
	if out, err := d.kubectlStdin(manifest, "create", "-n", "team-a", "-f", "-"); err != nil {
		t.Fatalf("create in team-a: %v\n%s", err, out)
	}
	d.waitPod("team-a", "p", 60*time.Second, "Running", running)
	if out := d.mustKubectl("get", "pods"); strings.Contains(out, "p ") {
		t.Errorf("pod of team-a listed in default:\n%s", out)
	}
	if out, err := d.kubectlStdin(manifest, "create", "-n", "missing", "-f", "-"); err == nil || !strings.Contains(out, `namespaces "missing" not found`) {
		t.Errorf("create in a missing namespace: err=%v\n%s", err, out)
	}
	d.mustKubectl("delete", "pod", "p", "-n", "team-a")
	d.waitGone("team-a", "p", 30*time.Second)
	d.assertNoLeaks()
}
