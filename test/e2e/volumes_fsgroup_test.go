package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestVolumesFSGroup: a pod running as user 1000 with fsGroup 2000 has group
// 2000 among its groups, writes into its emptyDir (group 2000, setgid, so new
// files get the group) and reads a secret of defaultMode 0440 that only the
// group may read — as on a kubelet.
func TestVolumesFSGroup(t *testing.T) {
	d := startDaemon(t)
	d.cleanupPods("default")
	d.importBusybox()
	d.mustKubectl("create", "secret", "generic", "creds", "--from-literal=token=s3cret")
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: fsgroup}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, fsGroup: 2000}
  volumes:
  - {name: data, emptyDir: {}}
  - {name: sec, secret: {secretName: creds, defaultMode: 0440}}
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "600"]
    volumeMounts: [{name: data, mountPath: /data}, {name: sec, mountPath: /sec}]
`)
	d.waitPod("default", "fsgroup", 60*time.Second, "Running", running)
	exec := func(script string) string {
		t.Helper()
		return d.mustKubectl("exec", "fsgroup", "--", "sh", "-c", script)
	}

	if out := exec("id -u"); out != "1000\n" {
		t.Errorf("id -u: %q, want 1000", out)
	}
	if out := exec("id -G"); !slices.Contains(strings.Fields(out), "2000") {
		t.Errorf("id -G: %q, want group 2000 among them", out)
	}
	// ls -ln: mode, links, uid, gid.
	lsFields := func(out string) []string {
		f := strings.Fields(out)
		if len(f) < 4 {
			t.Fatalf("ls -ln output %q", out)
		}
		return f[:4]
	}
	if f := lsFields(exec("ls -lnd /data")); f[0] != "drwxrwsrwx" || f[3] != "2000" {
		t.Errorf("emptyDir: %v, want drwxrwsrwx group 2000", f)
	}
	if f := lsFields(exec("echo hi > /data/f && ls -ln /data/f")); f[0] != "-rw-r--r--" || f[2] != "1000" || f[3] != "2000" {
		t.Errorf("file written into the emptyDir: %v, want owner 1000 group 2000", f)
	}
	if f := lsFields(exec("ls -lnL /sec/token")); f[0] != "-r--r-----" || f[2] != "0" || f[3] != "2000" {
		t.Errorf("secret file: %v, want -r--r----- 0 2000", f)
	}
	if out := exec("cat /sec/token"); out != "s3cret" {
		t.Errorf("secret read by user 1000 through group 2000: %q", out)
	}

	d.deleteAllPods("default", 60*time.Second)
	d.assertNoLeaks()
}
