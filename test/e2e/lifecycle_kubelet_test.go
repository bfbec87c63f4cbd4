package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestKubeletLifecycle checks the pod lifecycle of issue 5 through the real
// kubectl: restarts and back-off, init containers and sidecars, probes, hooks,
// OOM kills, volumes, restart policies and deadlines. The subtests share one
// daemon and run in parallel; each creates its own pods.
func TestKubeletLifecycle(t *testing.T) {
	d := startDaemon(t)
	d.cleanupPods("default")
	d.importBusybox()
	t.Run("group", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			fn   func(t *testing.T, d *daemon)
		}{
			{"CrashLoopBackOff", testCrashLoop},
			{"InitContainersAndSidecar", testInitAndSidecar},
			{"LivenessHTTP", testLivenessHTTP},
			{"LivenessExec", testLivenessExec},
			{"ReadinessFlip", testReadinessFlip},
			{"Hooks", testHooks},
			{"GracePeriod", testGracePeriod},
			{"PostStartFailure", testPostStartFailure},
			{"StartupProbe", testStartupProbe},
			{"ImageChange", testImageChange},
			{"InitFailureNever", testInitFailureNever},
			{"SidecarRestart", testSidecarRestart},
			{"EnvAndSubPath", testEnvAndSubPath},
			{"OOMKilled", testOOMKilled},
			{"Volumes", testVolumes},
			{"ConfigMapAndSecret", testConfigMapAndSecret},
			{"RestartPolicies", testRestartPolicies},
			{"ActiveDeadline", testActiveDeadline},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.fn(t, d.forTest(t))
			})
		}
	})
	d.deleteAllPods("default", 90*time.Second)
	d.assertNoLeaks()
}

func testCrashLoop(t *testing.T, d *daemon) {
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo boom; exit 3"]
`)
	p := d.waitPod("default", "crash", 90*time.Second, "in CrashLoopBackOff after a restart", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.RestartCount >= 1 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	cs := containerStatus(p, "c")
	if !strings.Contains(cs.State.Waiting.Message, "back-off") || !strings.Contains(cs.State.Waiting.Message, "restarting failed container=c pod=crash_default") {
		t.Errorf("waiting message %q, want the kubelet's %q", cs.State.Waiting.Message, "back-off 20s restarting failed container=c pod=crash_default(<uid>)")
	}
	lt := cs.LastTerminationState.Terminated
	if lt == nil || lt.ExitCode != 3 || lt.Reason != "Error" || lt.StartedAt.IsZero() || lt.FinishedAt.IsZero() || lt.ContainerID == "" {
		t.Errorf("lastState.terminated = %+v, want exit code 3, reason Error, times and containerID", lt)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running (restartPolicy Always)", p.Status.Phase)
	}
	if table := d.mustKubectl("get", "pod", "crash"); !strings.Contains(table, "CrashLoopBackOff") {
		t.Errorf("kubectl get pod does not show CrashLoopBackOff:\n%s", table)
	}
	if logs := d.mustKubectl("logs", "crash", "--previous"); strings.TrimSpace(logs) != "boom" {
		t.Errorf("kubectl logs --previous = %q, want boom", logs)
	}
	d.waitEvents("default", "crash", 10*time.Second, "Scheduled", "Pulled", "Created", "Started", "BackOff")
	desc := d.mustKubectl("describe", "pod", "crash")
	for _, want := range []string{"Events:", "BackOff", "Back-off restarting failed container c in pod crash_default", "Started", "CrashLoopBackOff", "Last State:     Terminated", "Exit Code:    3", "Restart Count:"} {
		if !strings.Contains(desc, want) {
			t.Errorf("kubectl describe pod lacks %q:\n%s", want, desc)
		}
	}
}

// An init container chain with a sidecar between the two init containers:
// init1 (held until the test releases it), sidecar (restartPolicy Always),
// init2, then the app. Each appends to a shared log on a hostPath volume.
func testInitAndSidecar(t *testing.T, d *daemon) {
	dir := hostDir(t)
	d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: initchain}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - {name: log, hostPath: {path: %s, type: Directory}}
  - {name: shared, emptyDir: {}}
  initContainers:
  - name: init1
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo init1 >> /log/order; until [ -f /log/go ]; do sleep 0.2; done; echo init1-data > /shared/data"]
    volumeMounts: [{name: log, mountPath: /log}, {name: shared, mountPath: /shared}]
  - name: sidecar
    image: busybox
    imagePullPolicy: Never
    restartPolicy: Always
    command: ["sh", "-c", "echo sidecar >> /log/order; trap 'echo sidecar-term >> /log/order; exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{name: log, mountPath: /log}]
  - name: init2
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo init2 >> /log/order"]
    volumeMounts: [{name: log, mountPath: /log}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo app-$(cat /shared/data) >> /log/order; trap 'echo app-term >> /log/order; exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{name: log, mountPath: /log}, {name: shared, mountPath: /shared}]
`, dir))
	// init1 runs and waits for /log/go: the pod is Init:0/3, not Initialized.
	waitFile(t, filepath.Join(dir, "order"), 60*time.Second, "holding init1", func(l []string) bool { return indexOf(l, "init1") >= 0 })
	p := d.waitPod("default", "initchain", 30*time.Second, "initializing", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "init1")
		return cs != nil && cs.State.Running != nil
	})
	if !conditionIs(p, corev1.PodInitialized, corev1.ConditionFalse) || p.Status.Phase != corev1.PodPending {
		t.Errorf("while init1 runs: phase %s, Initialized %+v; want Pending, False", p.Status.Phase, condition(p, corev1.PodInitialized))
	}
	if cs := containerStatus(p, "app"); cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("app while init1 runs: %+v, want waiting PodInitializing", cs)
	}
	if table := d.mustKubectl("get", "pod", "initchain"); !strings.Contains(table, "Init:0/3") {
		t.Errorf("kubectl get pod while init1 runs does not show Init:0/3:\n%s", table)
	}
	touch(t, filepath.Join(dir, "go"))
	p = d.waitPod("default", "initchain", 60*time.Second, "Running with its sidecar", func(p *corev1.Pod) bool {
		sc := containerStatus(p, "sidecar")
		return running(p) && sc != nil && sc.State.Running != nil && sc.Ready
	})
	if !conditionIs(p, corev1.PodInitialized, corev1.ConditionTrue) || !conditionIs(p, corev1.PodReady, corev1.ConditionTrue) {
		t.Errorf("running pod conditions: %+v", p.Status.Conditions)
	}
	for _, name := range []string{"init1", "init2"} {
		if cs := containerStatus(p, name); cs == nil || cs.State.Terminated == nil || cs.State.Terminated.Reason != "Completed" || cs.State.Terminated.ExitCode != 0 {
			t.Errorf("init container %s: %+v, want terminated Completed", name, cs)
		}
	}
	if table := d.mustKubectl("get", "pod", "initchain"); !strings.Contains(table, "2/2") || !strings.Contains(table, "Running") {
		t.Errorf("kubectl get pod: want READY 2/2 (the sidecar counts) and Running:\n%s", table)
	}
	lines := waitFile(t, filepath.Join(dir, "order"), 30*time.Second, "showing the app", func(l []string) bool { return indexOf(l, "app-init1-data") >= 0 })
	if want := []string{"init1", "sidecar", "init2", "app-init1-data"}; strings.Join(lines, " ") != strings.Join(want, " ") {
		t.Errorf("start order %q, want %q", lines, want)
	}
	// Termination stops the app first and the sidecar after it.
	d.mustKubectl("delete", "pod", "initchain", "--wait=false")
	d.waitGone("default", "initchain", 60*time.Second)
	lines = waitFile(t, filepath.Join(dir, "order"), 5*time.Second, "showing both terminations", func(l []string) bool {
		return indexOf(l, "app-term") >= 0 && indexOf(l, "sidecar-term") >= 0
	})
	if indexOf(lines, "app-term") > indexOf(lines, "sidecar-term") {
		t.Errorf("the sidecar stopped before the app: %q", lines)
	}
}

// logsThroughEnd returns what kubectl logs shows for args once it holds the
// "end" the container prints last, or what it shows after 30 s.
func (d *daemon) logsThroughEnd(args ...string) string {
	var logs string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if logs = d.mustKubectl(append([]string{"logs"}, args...)...); strings.Contains(logs, "end") {
			break
		}
	}
	return logs
}

// livenessRestart waits for a liveness restart and checks the events and status.
func livenessRestart(t *testing.T, d *daemon, name, probeMessage string) {
	p := d.waitPod("default", name, 90*time.Second, "restarted by its liveness probe", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.RestartCount >= 1 && cs.State.Running != nil
	})
	cs := containerStatus(p, "c")
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.FinishedAt.IsZero() {
		t.Errorf("lastState.terminated = %+v after a liveness restart", lt)
	}
	// Identical events are aggregated: the second start counts on the first Started.
	evs := d.waitEvents("default", name, 10*time.Second, "Started", "Unhealthy", "Killing")
	for _, e := range evs {
		switch e.Reason {
		case "Started":
			if e.Count < 2 {
				t.Errorf("Started event count %d after a restart", e.Count)
			}
		case "Unhealthy":
			if !strings.HasPrefix(e.Message, "Liveness probe failed:") || !strings.Contains(e.Message, probeMessage) || e.Type != corev1.EventTypeWarning {
				t.Errorf("Unhealthy event: %s %q, want Warning %q", e.Type, e.Message, "Liveness probe failed: "+probeMessage)
			}
			if e.InvolvedObject.FieldPath != "spec.containers{c}" {
				t.Errorf("Unhealthy event fieldPath %q", e.InvolvedObject.FieldPath)
			}
		case "Killing":
			if e.Message != "Container c failed liveness probe, will be restarted" {
				t.Errorf("Killing event message %q", e.Message)
			}
		}
	}
}

func testLivenessHTTP(t *testing.T, d *daemon) {
	// httpd serves /healthz for 3 s, then the file is removed: 404.
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: live-http}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www; echo ok > /www/healthz; (sleep 3; rm /www/healthz) & exec httpd -f -p 8080 -h /www"]
    ports: [{name: web, containerPort: 8080}]
    livenessProbe:
      httpGet: {path: /healthz, port: web}
      periodSeconds: 1
      failureThreshold: 2
`)
	livenessRestart(t, d, "live-http", "HTTP probe failed with statuscode: 404")
}

func testLivenessExec(t *testing.T, d *daemon) {
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: live-exec}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 1
`)
	livenessRestart(t, d, "live-exec", "cat: can't open '/tmp/healthy': No such file or directory")
}

// Readiness follows a file the test creates and removes on a hostPath volume.
func testReadinessFlip(t *testing.T, d *daemon) {
	dir := hostDir(t)
	d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: ready-flip}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: h, hostPath: {path: %s}}]
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "600"]
    volumeMounts: [{name: h, mountPath: /h}]
    readinessProbe:
      exec: {command: ["test", "-f", "/h/ready"]}
      periodSeconds: 1
`, dir))
	notReady := func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return p.Status.Phase == corev1.PodRunning && cs != nil && cs.State.Running != nil && !cs.Ready &&
			conditionIs(p, corev1.PodReady, corev1.ConditionFalse) && conditionIs(p, corev1.ContainersReady, corev1.ConditionFalse)
	}
	isReady := func(p *corev1.Pod) bool {
		return running(p) && conditionIs(p, corev1.PodReady, corev1.ConditionTrue) && conditionIs(p, corev1.ContainersReady, corev1.ConditionTrue)
	}
	d.waitPod("default", "ready-flip", 60*time.Second, "running, not ready", notReady)
	touch(t, filepath.Join(dir, "ready"))
	p := d.waitPod("default", "ready-flip", 30*time.Second, "ready", isReady)
	if cs := containerStatus(p, "c"); cs.RestartCount != 0 {
		t.Errorf("readiness restarted the container: %+v", cs)
	}
	os.Remove(filepath.Join(dir, "ready"))
	p = d.waitPod("default", "ready-flip", 30*time.Second, "not ready again", notReady)
	if r := condition(p, corev1.PodReady); r.Reason != "ContainersNotReady" || !strings.Contains(r.Message, "containers with unready status: [c]") {
		t.Errorf("Ready condition %+v, want reason ContainersNotReady", r)
	}
	touch(t, filepath.Join(dir, "ready"))
	d.waitPod("default", "ready-flip", 30*time.Second, "ready again", isReady)
	d.waitEvents("default", "ready-flip", 10*time.Second, "Started", "Unhealthy")
}

// postStart runs after the start and before Running; preStop before the stop signal.
func testHooks(t *testing.T, d *daemon) {
	dir := hostDir(t)
	d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{name: log, hostPath: {path: %s}}]
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'echo term >> /log/order; exit 0' TERM; echo main >> /log/order; while true; do sleep 0.2; done"]
    volumeMounts: [{name: log, mountPath: /log}]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "sleep 1; echo poststart >> /log/order"]}}
      preStop: {exec: {command: ["sh", "-c", "echo prestop >> /log/order; sleep 1; echo prestop-done >> /log/order"]}}
`, dir))
	d.waitPod("default", "hooks", 60*time.Second, "Running", running)
	// The container is not Running until its postStart hook has finished.
	if lines := waitFile(t, filepath.Join(dir, "order"), time.Second, "showing poststart", func([]string) bool { return true }); indexOf(lines, "poststart") < 0 {
		t.Errorf("pod Running before its postStart hook finished: %q", lines)
	}
	d.mustKubectl("delete", "pod", "hooks", "--wait=false")
	d.waitGone("default", "hooks", 60*time.Second)
	lines := waitFile(t, filepath.Join(dir, "order"), 5*time.Second, "showing term", func(l []string) bool { return indexOf(l, "term") >= 0 })
	if !(indexOf(lines, "prestop") >= 0 && indexOf(lines, "prestop") < indexOf(lines, "prestop-done") && indexOf(lines, "prestop-done") < indexOf(lines, "term")) {
		t.Errorf("order %q: want prestop, prestop-done, then term", lines)
	}
}

func testOOMKilled(t *testing.T, d *daemon) {
	// tail keeps the last lines in memory: one endless line outgrows 32 MiB.
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "tail /dev/zero"]
    resources:
      limits: {memory: 32Mi}
`)
	p := d.waitPod("default", "oom", 90*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	cs := containerStatus(p, "c")
	if term := cs.State.Terminated; term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("terminated state %+v, want OOMKilled with exit code 137", term)
	}
	if table := d.mustKubectl("get", "pod", "oom"); !strings.Contains(table, "OOMKilled") {
		t.Errorf("kubectl get pod does not show OOMKilled:\n%s", table)
	}
}

// Volumes shared between two containers: emptyDir on disk and in memory,
// hostPath and downwardAPI. The reader waits for the writer and prints what it sees.
func testVolumes(t *testing.T, d *daemon) {
	dir := hostDir(t)
	if err := os.WriteFile(filepath.Join(dir, "from-host"), []byte("host-data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata:
  name: volumes
  labels: {app: vol, tier: test}
  annotations: {note: shared}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: disk, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
  - {name: host, hostPath: {path: %s, type: Directory}}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: cpu-limit, resourceFieldRef: {containerName: writer, resource: limits.cpu, divisor: 1m}}
  containers:
  - name: writer
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo disk-data > /disk/f; echo mem-data > /mem/f; echo writer-data > /host/from-pod; touch /disk/done; exec sleep 600"]
    resources: {limits: {cpu: 250m}}
    volumeMounts: [{name: disk, mountPath: /disk}, {name: mem, mountPath: /mem}, {name: host, mountPath: /host}, {name: info, mountPath: /info}]
  - name: reader
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "until [ -f /d/done ]; do sleep 0.2; done; cat /d/f /m/f /h/from-host /h/from-pod; cat /i/name; echo; cat /i/labels; echo; cat /i/cpu-limit; echo; grep ' /m ' /proc/mounts | cut -d' ' -f3; grep ' /i ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; if dd if=/dev/zero of=/m/big bs=1M count=16 2>/dev/null; then echo unlimited; else echo limited; fi; rm -f /m/big; echo end; exec sleep 600"]
    volumeMounts: [{name: disk, mountPath: /d}, {name: mem, mountPath: /m}, {name: host, mountPath: /h, readOnly: true}, {name: info, mountPath: /i}]
`, dir))
	d.waitPod("default", "volumes", 60*time.Second, "Running", running)
	logs := d.logsThroughEnd("volumes", "-c", "reader")
	// The memory emptyDir is a tmpfs of its sizeLimit (8Mi): 16 MiB do not fit.
	want := "disk-data\nmem-data\nhost-data\nwriter-data\nvolumes\napp=\"vol\"\ntier=\"test\"\n250\ntmpfs\nro\nlimited\nend\n"
	if logs != want {
		t.Errorf("reader saw:\n%s\nwant:\n%s", logs, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "from-pod")); err != nil || string(b) != "writer-data\n" {
		t.Errorf("hostPath file written by the pod: %q, %v", b, err)
	}
	// A hostPath of type Directory that does not exist fails the container's start.
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: badhostpath}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: h, hostPath: {path: /nonexistent/peapod-e2e, type: Directory}}]
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"], volumeMounts: [{name: h, mountPath: /h}]}
`)
	d.waitEvents("default", "badhostpath", 60*time.Second, "FailedMount")
	if p, err := d.getPod("default", "badhostpath"); err != nil || p.Status.Phase != corev1.PodPending {
		t.Errorf("pod with a missing hostPath directory: %v %+v, want Pending", err, p.Status)
	}
}

func testRestartPolicies(t *testing.T, d *daemon) {
	pod := func(name, policy, script string) string {
		return fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: 1
  volumes: [{name: d, emptyDir: {}}]
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sh", "-c", %q], volumeMounts: [{name: d, mountPath: /d}]}
`, name, policy, script)
	}
	d.create(pod("never-ok", "Never", "exit 0"))
	d.create(pod("never-fail", "Never", "exit 1"))
	// Fails once, then succeeds: the emptyDir outlives the container.
	d.create(pod("onfailure", "OnFailure", "if [ -f /d/ran ]; then exit 0; fi; touch /d/ran; exit 1"))
	finished := func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	}
	for _, c := range []struct {
		name     string
		phase    corev1.PodPhase
		reason   string
		exit     int32
		restarts int32
		column   string
	}{
		{"never-ok", corev1.PodSucceeded, "Completed", 0, 0, "Completed"},
		{"never-fail", corev1.PodFailed, "Error", 1, 0, "Error"},
		{"onfailure", corev1.PodSucceeded, "Completed", 0, 1, "Completed"},
	} {
		p := d.waitPod("default", c.name, 90*time.Second, "finished", finished)
		cs := containerStatus(p, "c")
		if p.Status.Phase != c.phase || cs.State.Terminated == nil || cs.State.Terminated.Reason != c.reason || cs.State.Terminated.ExitCode != c.exit || cs.RestartCount != c.restarts {
			t.Errorf("%s: phase %s, container %+v; want %s, %s, exit %d, %d restarts", c.name, p.Status.Phase, cs, c.phase, c.reason, c.exit, c.restarts)
		}
		if conditionIs(p, corev1.PodReady, corev1.ConditionTrue) {
			t.Errorf("%s: a finished pod is Ready", c.name)
		}
		if table := d.mustKubectl("get", "pod", c.name); !strings.Contains(table, c.column) {
			t.Errorf("%s: kubectl get pod does not show %s:\n%s", c.name, c.column, table)
		}
	}
}

func testActiveDeadline(t *testing.T, d *daemon) {
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 2
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"]}
`)
	p := d.waitPod("default", "deadline", 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if p.Status.Reason != "DeadlineExceeded" || !strings.Contains(p.Status.Message, "active") {
		t.Errorf("status reason %q message %q, want DeadlineExceeded", p.Status.Reason, p.Status.Message)
	}
	p = d.waitPod("default", "deadline", 30*time.Second, "with its container stopped", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.State.Terminated != nil
	})
	d.waitEvents("default", "deadline", 10*time.Second, "Started", "DeadlineExceeded")
}

// ConfigMap and Secret objects as volumes (plain and projected) and as env,
// shared between two containers; an update of the ConfigMap reaches the volume.
func testConfigMapAndSecret(t *testing.T, d *daemon) {
	d.mustKubectl("create", "configmap", "settings", "--from-literal=color=blue", "--from-literal=size=L")
	d.mustKubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cret")
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: objects}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: cm, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds, defaultMode: 0400}}
  - name: proj
    projected:
      sources:
      - configMap: {name: settings, items: [{key: size, path: sz}]}
      - secret: {name: creds}
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
  containers:
  - name: a
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "while true; do echo $(cat /cm/size) $(cat /cm/color); sleep 1; done"]
    volumeMounts: [{name: cm, mountPath: /cm}, {name: sec, mountPath: /sec}]
  - name: b
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /cm/color; echo; cat /sec/password; echo; stat -Lc %a /sec/password; cat /p/sz; echo; cat /p/password; echo; cat /p/ns; echo; echo $COLOR $PASS; echo end; exec sleep 600"]
    env:
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}
    - {name: PASS, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    volumeMounts: [{name: cm, mountPath: /cm}, {name: sec, mountPath: /sec}, {name: proj, mountPath: /p}]
`)
	d.waitPod("default", "objects", 60*time.Second, "Running", running)
	want := "blue\ns3cret\n400\nL\ns3cret\ndefault\nblue s3cret\nend\n"
	logs := d.logsThroughEnd("objects", "-c", "b")
	if logs != want {
		t.Errorf("container b saw:\n%s\nwant:\n%s", logs, want)
	}
	// Container a sees the same files, and an update of the ConfigMap (the pod
	// manager resyncs every pod at least once a minute).
	waitLog := func(want string, timeout time.Duration) {
		t.Helper()
		var out string
		for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
			if out = d.mustKubectl("logs", "objects", "-c", "a", "--tail=1"); out == want {
				return
			}
		}
		t.Fatalf("container a prints %q, want %q", out, want)
	}
	waitLog("L blue\n", 30*time.Second)
	d.mustKubectl("patch", "configmap", "settings", "-p", `{"data":{"color":"red"}}`)
	waitLog("L red\n", 90*time.Second)
}

// A container that ignores SIGTERM is killed when the pod's own
// terminationGracePeriodSeconds runs out (the delete names no grace period).
func testGracePeriod(t *testing.T, d *daemon) {
	dir := hostDir(t)
	d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: ignores-term}
spec:
  terminationGracePeriodSeconds: 3
  volumes: [{name: log, hostPath: {path: %s}}]
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'echo got-term >> /log/order' TERM; echo started >> /log/order; while true; do sleep 0.2; done"]
    volumeMounts: [{name: log, mountPath: /log}]
`, dir))
	d.waitPod("default", "ignores-term", 60*time.Second, "Running", running)
	waitFile(t, filepath.Join(dir, "order"), 10*time.Second, "started", func(l []string) bool { return indexOf(l, "started") >= 0 })
	start := time.Now()
	d.mustKubectl("delete", "pod", "ignores-term", "--wait=false")
	if p, err := d.getPod("default", "ignores-term"); err == nil && (p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 3) {
		t.Errorf("deletionGracePeriodSeconds %v, want the pod's 3", p.DeletionGracePeriodSeconds)
	}
	d.waitGone("default", "ignores-term", 60*time.Second)
	if elapsed := time.Since(start); elapsed < 3*time.Second {
		t.Errorf("gone after %v, before its 3 s grace period", elapsed)
	}
	waitFile(t, filepath.Join(dir, "order"), 5*time.Second, "showing the SIGTERM", func(l []string) bool { return indexOf(l, "got-term") >= 0 })
	d.waitEvents("default", "ignores-term", 10*time.Second, "Started", "Killing")
}

// A failing postStart hook kills the container: FailedPostStartHook, then a restart.
func testPostStartFailure(t *testing.T, d *daemon) {
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: poststart-fails}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "600"]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "exit 7"]}}
`)
	d.waitPod("default", "poststart-fails", 60*time.Second, "restarted", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.RestartCount >= 1
	})
	evs := d.waitEvents("default", "poststart-fails", 10*time.Second, "Started", "FailedPostStartHook", "Killing")
	for _, e := range evs {
		if e.Reason == "FailedPostStartHook" && (e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, "exited with 7")) {
			t.Errorf("FailedPostStartHook event: %s %q", e.Type, e.Message)
		}
	}
}

// A startup probe gates liveness: a slow start is not killed, and the
// container counts as started only once the startup probe succeeds; then the
// failing liveness probe restarts it.
func testStartupProbe(t *testing.T, d *daemon) {
	dir := hostDir(t)
	d.create(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: slow-start}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: h, hostPath: {path: %s}}]
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "600"]
    volumeMounts: [{name: h, mountPath: /h}]
    startupProbe:
      exec: {command: ["sh", "-c", "echo attempt >> /h/attempts; test -f /h/started"]}
      periodSeconds: 1
      failureThreshold: 600
    livenessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 1
`, dir))
	// Three failed startup probes: an ungated liveness probe would have killed it by now.
	waitFile(t, filepath.Join(dir, "attempts"), 60*time.Second, "showing 3 startup probes", func(l []string) bool { return len(l) >= 3 })
	p, err := d.getPod("default", "slow-start")
	if err != nil {
		t.Fatal(err)
	}
	if cs := containerStatus(p, "c"); cs == nil || cs.RestartCount != 0 || cs.State.Running == nil || cs.Started == nil || *cs.Started || cs.Ready {
		t.Errorf("during start-up: %+v, want running, not started, not ready, no restart", cs)
	}
	touch(t, filepath.Join(dir, "started"))
	d.waitPod("default", "slow-start", 60*time.Second, "restarted by liveness once started", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.RestartCount >= 1
	})
	d.waitEvents("default", "slow-start", 10*time.Second, "Started", "Unhealthy", "Killing")
}

// Changing a container's image (kubectl patch) restarts that container with
// the new image; the pod and its other containers stay.
func testImageChange(t *testing.T, d *daemon) {
	if out, err := d.peapod("image", "import", busyboxTar, "busybox:v2"); err != nil {
		t.Fatalf("image import: %v\n%s", err, out)
	}
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: image-change}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: a, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"]}
  - {name: b, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"]}
`)
	before := d.waitPod("default", "image-change", 60*time.Second, "Running", running)
	d.mustKubectl("patch", "pod", "image-change", "-p", `{"spec":{"containers":[{"name":"a","image":"busybox:v2"}]}}`)
	after := d.waitPod("default", "image-change", 60*time.Second, "running the new image", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "a")
		return running(p) && cs.Image == "busybox:v2" && cs.ContainerID != containerStatus(before, "a").ContainerID
	})
	if a := containerStatus(after, "a"); a.RestartCount != 1 {
		t.Errorf("container a after the image change: restartCount %d, want 1", a.RestartCount)
	}
	if b, b0 := containerStatus(after, "b"), containerStatus(before, "b"); b.ContainerID != b0.ContainerID || b.RestartCount != 0 {
		t.Errorf("container b was restarted: %s → %s", b0.ContainerID, b.ContainerID)
	}
	if after.Status.PodIP != before.Status.PodIP {
		t.Errorf("the pod's sandbox changed: IP %s → %s", before.Status.PodIP, after.Status.PodIP)
	}
	d.waitEvents("default", "image-change", 10*time.Second, "Killing")
	// Other spec changes are refused as the API server refuses them.
	if out, err := d.kubectl("patch", "pod", "image-change", "-p", `{"spec":{"containers":[{"name":"a","command":["true"]}]}}`); err == nil || !strings.Contains(out, "Forbidden: pod updates may not change fields other than") {
		t.Errorf("patching a command: %v\n%s", err, out)
	}
}

// An init container that fails under restartPolicy Never fails the pod; the
// app container never starts.
func testInitFailureNever(t *testing.T, d *daemon) {
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: init-fails}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: init, image: busybox, imagePullPolicy: Never, command: ["sh", "-c", "exit 4"]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"]}
`)
	p := d.waitPod("default", "init-fails", 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if cs := containerStatus(p, "init"); cs == nil || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 4 || cs.State.Terminated.Reason != "Error" {
		t.Errorf("init container: %+v", cs)
	}
	if cs := containerStatus(p, "app"); cs == nil || cs.State.Running != nil || cs.State.Terminated != nil || cs.ContainerID != "" {
		t.Errorf("app container of a pod whose init failed: %+v", cs)
	}
	if table := d.mustKubectl("get", "pod", "init-fails"); !strings.Contains(table, "Init:Error") {
		t.Errorf("kubectl get pod does not show Init:Error:\n%s", table)
	}
}

// A sidecar that exits is restarted while the app keeps running.
func testSidecarRestart(t *testing.T, d *daemon) {
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: sidecar-restart}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: side, image: busybox, imagePullPolicy: Never, restartPolicy: Always, command: ["sh", "-c", "sleep 2; exit 1"]}
  containers:
  - {name: app, image: busybox, imagePullPolicy: Never, command: ["sleep", "600"]}
`)
	app := ""
	p := d.waitPod("default", "sidecar-restart", 60*time.Second, "with its sidecar restarted", func(p *corev1.Pod) bool {
		side, a := containerStatus(p, "side"), containerStatus(p, "app")
		if a != nil && a.State.Running != nil && app == "" {
			app = a.ContainerID
		}
		return side != nil && side.RestartCount >= 1 && a != nil && a.State.Running != nil
	})
	if a := containerStatus(p, "app"); a.RestartCount != 0 || a.ContainerID != app {
		t.Errorf("the app restarted with its sidecar: %+v", a)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running", p.Status.Phase)
	}
}

// env from fields, resources and $(VAR) expansion; hostAliases; subPath.
func testEnvAndSubPath(t *testing.T, d *daemon) {
	d.create(`
apiVersion: v1
kind: Pod
metadata: {name: env-subpath, labels: {tier: web}}
spec:
  terminationGracePeriodSeconds: 1
  hostAliases: [{ip: 10.1.2.3, hostnames: [alias.example]}]
  volumes: [{name: d, emptyDir: {}}]
  initContainers:
  - {name: prep, image: busybox, imagePullPolicy: Never, command: ["sh", "-c", "mkdir -p /d/sub && echo in-sub > /d/sub/f"], volumeMounts: [{name: d, mountPath: /d}]}
  containers:
  - name: c
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "echo $(GREETING) $POD $NS $IP_SET $MEM; grep alias.example /etc/hosts | cut -f1; cat /s/f; echo end; exec sleep 600"]
    resources: {limits: {memory: 64Mi}}
    env:
    - {name: NAME, value: world}
    - {name: GREETING, value: "hello-$(NAME)"}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: IP_SET, value: "ip=$(IP)"}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    volumeMounts: [{name: d, mountPath: /s, subPath: sub}]
`)
	p := d.waitPod("default", "env-subpath", 60*time.Second, "Running", running)
	logs := d.logsThroughEnd("env-subpath")
	want := fmt.Sprintf("hello-world env-subpath default ip=%s 64\n10.1.2.3\nin-sub\nend\n", p.Status.PodIP)
	if logs != want {
		t.Errorf("container printed:\n%s\nwant:\n%s", logs, want)
	}
}
