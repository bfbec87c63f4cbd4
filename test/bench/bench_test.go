// Package bench measures the pod manager's costs of issue 5 against a live
// daemon:
//
//	go test -bench . -run '^$' -benchtime 1x ./test/bench/
//
// BenchmarkProbes: 50 pods, each with an exec, an http and a tcp probe every
// second: CPU of the daemon and of every process it starts (its reaped
// children, and its peapod-enter with the exec probes' commands, which that
// reaps), the goal of issue 5; also that of the web containers' cgroups
// (the servers answering the http and tcp probes), and the daemon's memory.
// It also measures one bare `runc exec` for comparison.
// PEAPOD_BENCH_PODS=N runs N pods instead of 50 (quicker iterations); PEAPOD_BENCH_CPUPROFILE=FILE writes the
// daemon's CPU profile over the measured window to FILE (from the API
// server's /debug/pprof; `go tool pprof -top FILE`).
//
// BenchmarkStart20: time from one `kubectl create` of 20 pods to all
// Running, against `podman kube play` of the same 20 pods.
//
// Run as root with runc, the CNI plugins, busybox-static, kubectl and (for
// the comparison) podman; with CI=true a missing prerequisite fails.
package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod-dev/peapod/internal/dirs"
)

const (
	benchBridge     = "pp5bench0"
	benchSubnet     = "10.215.0.0/24"
	benchCgroupRoot = "/peapod-bench5"
	clockTicks      = 100 // USER_HZ
)

type daemon struct {
	b          *testing.B
	bin        string
	root       string
	kubeconfig string
	cmd        *exec.Cmd
	out        bytes.Buffer
}

func requireRoot(b *testing.B) {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range []string{"kubectl", "runc", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	for _, f := range []string{"/usr/lib/cni/bridge", "/bin/busybox"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		b.Fatalf("missing prerequisites: %v", missing)
	}
	b.Skipf("missing prerequisites: %v", missing)
}

// startDaemon builds the binaries and the busybox image and runs `peapod serve`.
func startDaemon(b *testing.B) *daemon {
	requireRoot(b)
	tmp := b.TempDir()
	d := &daemon{b: b, bin: filepath.Join(tmp, "bin"), root: filepath.Join(tmp, "root")}
	d.kubeconfig = filepath.Join(d.root, "kubeconfig")
	if out, err := exec.Command("bash", "../../scripts/build.sh", d.bin).CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	tar := filepath.Join(tmp, "busybox.tar")
	if out, err := exec.Command("bash", "../../scripts/busybox-rootfs.sh", tar).CombinedOutput(); err != nil {
		b.Fatalf("busybox rootfs: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(d.bin, "peapod"), "--root", d.root, "image", "import", tar, "busybox").CombinedOutput(); err != nil {
		b.Fatalf("image import: %v\n%s", err, out)
	}
	d.cmd = exec.Command(filepath.Join(d.bin, "peapod"), "serve", "--root", d.root, "--address", "127.0.0.1:0",
		"--cni-bridge", benchBridge, "--cni-subnet", benchSubnet, "--cgroup-root", benchCgroupRoot)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(d.stop)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(d.kubeconfig); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("daemon not ready:\n%s", d.out.String())
		}
	}
	return d
}

// stop deletes every pod, stops the daemon with SIGTERM, and removes what
// the daemon leaves on the node: the bridge, its masquerade chain and the
// cgroup root.
func (d *daemon) stop() {
	d.kubectl("delete", "pods", "--all", "--grace-period=1", "--timeout=120s")
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	if d.b.Failed() {
		d.b.Logf("daemon log:\n%s", d.out.String())
	}
	_ = exec.Command("ip", "link", "del", benchBridge).Run()
	chain := "PEAPOD-MASQ-" + benchBridge
	_ = exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", benchSubnet, "-m", "comment",
		"--comment", "peapod: masquerade the pods of "+benchBridge, "-j", chain).Run()
	_ = exec.Command("iptables", "-w", "-t", "nat", "-F", chain).Run()
	_ = exec.Command("iptables", "-w", "-t", "nat", "-X", chain).Run()
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + benchCgroupRoot)
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- { // children first
			os.Remove(dirs[i])
		}
	}
}

func (d *daemon) kubectl(args ...string) (string, error) {
	out, err := exec.Command("kubectl", append([]string{"--kubeconfig", d.kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func (d *daemon) create(manifest string) {
	cmd := exec.Command("kubectl", "--kubeconfig", d.kubeconfig, "create", "--validate=false", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		d.b.Fatalf("kubectl create: %v\n%s", err, out)
	}
}

// pods lists the pods of the default namespace.
func (d *daemon) pods() []corev1.Pod {
	out, err := d.kubectl("get", "pods", "-o", "json")
	if err != nil {
		d.b.Fatalf("kubectl get pods: %v %s", err, out)
	}
	var list corev1.PodList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.b.Fatal(err)
	}
	return list.Items
}

// waitPods polls until n pods satisfy cond.
func (d *daemon) waitPods(n int, timeout time.Duration, cond func(*corev1.Pod) bool) []corev1.Pod {
	deadline := time.Now().Add(timeout)
	for {
		list := d.pods()
		ok := 0
		for i := range list {
			if cond(&list[i]) {
				ok++
			}
		}
		if ok == n {
			return list
		}
		if time.Now().After(deadline) {
			d.b.Fatalf("%d pods not ready within %v: %d are", n, timeout, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allRunning(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

func allReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil || !c.Ready {
			return false
		}
	}
	return true
}

// cpuSeconds of a process: its own time and that of its reaped children.
func cpuSeconds(pid int) (self, children float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	tick := func(i int) float64 { v, _ := strconv.ParseFloat(f[i-3], 64); return v / clockTicks }
	return tick(14) + tick(15), tick(16) + tick(17)
}

// enterCPU is the CPU time of the daemon's peapod-enter fork server and of
// the children it reaped.
func enterCPU(daemon int) float64 {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var sum float64
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil || !bytes.Contains(b, []byte("(peapod-enter) ")) {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == daemon {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			s, c := cpuSeconds(pid)
			sum += s + c
		}
	}
	return sum
}

// cgroupCPU is the CPU time of everything under the pods' cgroup root.
func cgroupCPU() float64 { return cgroupsCPU([]string{benchCgroupDir()}) }

// benchCgroupDir is the pods' cgroup root: cpuacct on cgroup v1, the
// unified hierarchy on v2.
func benchCgroupDir() string {
	if _, err := os.Stat("/sys/fs/cgroup/cpuacct" + benchCgroupRoot); err == nil {
		return "/sys/fs/cgroup/cpuacct" + benchCgroupRoot
	}
	return "/sys/fs/cgroup" + benchCgroupRoot
}

// containerCgroups finds the cgroup directories of the pods' containers
// named name (cpuacct on cgroup v1, the unified hierarchy on v2).
func containerCgroups(pods []corev1.Pod, name string) []string {
	ids := map[string]bool{}
	for _, p := range pods {
		for _, c := range p.Status.ContainerStatuses {
			if c.Name == name {
				ids[strings.TrimPrefix(c.ContainerID, "peapod://")] = true
			}
		}
	}
	var dirs []string
	filepath.WalkDir(benchCgroupDir(), func(path string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() && ids[e.Name()] {
			dirs = append(dirs, path)
		}
		return nil
	})
	return dirs
}

// cgroupsCPU sums the CPU seconds of cgroup directories.
func cgroupsCPU(dirs []string) float64 {
	var sum float64
	for _, dir := range dirs {
		if b, err := os.ReadFile(dir + "/cpuacct.usage"); err == nil {
			v, _ := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
			sum += v / 1e9
			continue
		}
		b, _ := os.ReadFile(dir + "/cpu.stat")
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f / 1e6
			}
		}
	}
	return sum
}

// monitorsCPU sums the CPU of the daemon's container monitors.
func (d *daemon) monitorsCPU() float64 {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var sum float64
	for _, p := range procs {
		if exe, _ := os.Readlink(p + "/exe"); exe == filepath.Join(d.bin, "peapod-monitor") {
			pid, _ := strconv.Atoi(filepath.Base(p))
			s, c := cpuSeconds(pid)
			sum += s + c
		}
	}
	return sum
}

// execProbes counts the exec probes run so far: each appends a newline to
// /tmp/probes in its container's writable layer.
func (d *daemon) execProbes() int64 {
	files, _ := filepath.Glob(filepath.Join(d.root, "snapshots", "*", "upper", "tmp", "probes"))
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// memory returns the daemon's resident and proportional set sizes in MiB.
func memory(pid int) (rss, pss float64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "Rss:":
			rss = v / 1024
		case "Pss:":
			pss = v / 1024
		}
	}
	return rss, pss
}

func probePod(i int) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Pod
metadata: {name: probed-%d}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    imagePullPolicy: Never
    command: ["httpd", "-f", "-p", "8080", "-h", "/etc"]
    livenessProbe: {httpGet: {path: /passwd, port: 8080}, periodSeconds: 1}
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
  - name: shell
    image: busybox
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    readinessProbe: {exec: {command: ["sh", "-c", "echo >> /tmp/probes"]}, periodSeconds: 1}
`, i)
}

// benchPods is PEAPOD_BENCH_PODS, or 50.
func benchPods(b *testing.B) int {
	v := os.Getenv("PEAPOD_BENCH_PODS")
	if v == "" {
		return 50
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("PEAPOD_BENCH_PODS=%q: want a positive number", v)
	}
	return n
}

// cpuProfile starts fetching the daemon's CPU profile over the next window
// into file; wait returns once it is written.
func (d *daemon) cpuProfile(file string, window time.Duration) (wait func()) {
	out, err := os.Create(file)
	if err != nil {
		d.b.Fatal(err)
	}
	cmd := exec.Command("kubectl", "--kubeconfig", d.kubeconfig, "--request-timeout", "0", "get", "--raw",
		fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(window.Seconds())))
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		d.b.Fatal(err)
	}
	return func() {
		err := cmd.Wait()
		out.Close()
		if err != nil {
			d.b.Fatalf("CPU profile: %v\n%s", err, stderr.String())
		}
	}
}

func BenchmarkProbes(b *testing.B) {
	const window = 30 * time.Second
	pods := benchPods(b)
	d := startDaemon(b)
	var manifest strings.Builder
	for i := 0; i < pods; i++ {
		manifest.WriteString(probePod(i))
	}
	d.create(manifest.String())
	// All containers running; readiness is not awaited: on a loaded machine a
	// runc exec can take longer than the probes' 1 s timeout.
	list := d.waitPods(pods, 5*time.Minute, allRunning)
	time.Sleep(5 * time.Second) // let the start-up work settle
	// The exec probes' processes are children of the daemon's peapod-enter,
	// reaped by it, so their CPU is in its children's time, also once they
	// are in the shell containers' cgroups: only the web containers'
	// cgroups (the servers answering the http and tcp probes) are added, and
	// only to the second total.
	web, shell := containerCgroups(list, "web"), containerCgroups(list, "shell")
	for i := 0; i < b.N; i++ {
		pid := d.cmd.Process.Pid
		s0, c0 := cpuSeconds(pid)
		n0 := enterCPU(pid)
		w0, sh0 := cgroupsCPU(web), cgroupsCPU(shell)
		g0, m0, e0 := cgroupCPU(), d.monitorsCPU(), d.execProbes()
		start := time.Now()
		waitProfile := func() {}
		if f := os.Getenv("PEAPOD_BENCH_CPUPROFILE"); f != "" {
			waitProfile = d.cpuProfile(f, window)
		}
		time.Sleep(window)
		s1, c1 := cpuSeconds(pid)
		n1 := enterCPU(pid)
		w1, sh1 := cgroupsCPU(web), cgroupsCPU(shell)
		g1, m1, e1 := cgroupCPU(), d.monitorsCPU(), d.execProbes()
		secs := time.Since(start).Seconds()
		rss, pss := memory(pid)
		self, children, enter, mon := (s1-s0)/secs, (c1-c0)/secs, (n1-n0)/secs, (m1-m0)/secs
		servers, inShell, cg := (w1-w0)/secs, (sh1-sh0)/secs, (g1-g0)/secs
		total := self + children + enter + mon
		b.ReportMetric(total*100, "%core")
		b.ReportMetric((total+servers)*100, "%core-with-servers")
		b.ReportMetric(rss, "daemonRSS-MiB")
		fmt.Printf("\n%d pods × (exec + http + tcp probe) every 1 s, over %.0f s (%% of one core):\n", pods, secs)
		fmt.Printf("  %-50s %6.1f%%\n", "daemon (peapod serve)", self*100)
		fmt.Printf("  %-50s %6.1f%%\n", "peapod-enter and the exec probes (its children)", enter*100)
		fmt.Printf("  %-50s %6.1f%%\n", "  of which in the shell containers' cgroups", inShell*100)
		fmt.Printf("  %-50s %6.1f%%\n", "other children of the daemon (runc)", children*100)
		fmt.Printf("  %-50s %6.1f%%\n", "container monitors", mon*100)
		fmt.Printf("  %-50s %6.1f%%\n", "total: the daemon and what it starts", total*100)
		fmt.Printf("  %-50s %6.1f%%\n", "web containers' cgroups (http/tcp servers)", servers*100)
		fmt.Printf("  %-50s %6.1f%%\n", "total with the servers answering the probes", (total+servers)*100)
		fmt.Printf("  %-50s %6.1f%%\n", "all pod cgroups (for reference)", cg*100)
		notReady := 0
		for _, p := range d.pods() {
			if !allReady(&p) {
				notReady++
			}
		}
		fmt.Printf("  %-50s %6.1f /s (of %d wanted); %d of %d pods not ready (exec probe timeouts)\n", "exec probes run", float64(e1-e0)/secs, pods, notReady, pods)
		fmt.Printf("  %-50s %6.1f MiB RSS, %.1f MiB PSS\n", "daemon memory", rss, pss)
		waitProfile()
	}
	// One bare `runc exec` into a pod's container, for comparison.
	ds, err := dirs.New(d.root)
	if err != nil {
		b.Fatal(err)
	}
	var id string
	for _, c := range list[0].Status.ContainerStatuses {
		if c.Name == "shell" {
			id = strings.TrimPrefix(c.ContainerID, "peapod://")
		}
	}
	const n = 20
	// Its CPU is runc's and that of the processes it reaps (runc init, true).
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	for i := 0; i < n; i++ {
		if out, err := exec.Command("runc", "--root", ds.RuncRoot(), "exec", id, "true").CombinedOutput(); err != nil {
			b.Fatalf("runc exec: %v\n%s", err, out)
		}
	}
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	runcCPU := (tv(after.Utime) - tv(before.Utime) + tv(after.Stime) - tv(before.Stime)) / n
	fmt.Printf("  %-50s %6.1f ms CPU (mean of %d, with the probes running)\n", "one bare `runc exec <id> true`", runcCPU*1000, n)
}

func startPods(image string) string {
	var m strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&m, `---
apiVersion: v1
kind: Pod
metadata: {name: start-%d}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: %s, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}
`, i, image)
	}
	return m.String()
}

func BenchmarkStart20(b *testing.B) {
	d := startDaemon(b)
	// Warm up: the first pod creates the QoS cgroups and the network bridge.
	d.create(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"warmup"},"spec":{"terminationGracePeriodSeconds":1,
		"containers":[{"name":"c","image":"busybox","imagePullPolicy":"IfNotPresent","command":["sleep","3600"]}]}}`)
	d.waitPods(1, time.Minute, allReady)
	if out, err := d.kubectl("delete", "pod", "warmup", "--grace-period=1"); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	var peapod, podman time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		d.create(startPods("busybox"))
		d.waitPods(20, 5*time.Minute, allReady)
		peapod = time.Since(t0)
		if out, err := d.kubectl("delete", "pods", "--all", "--grace-period=1", "--timeout=120s"); err != nil {
			b.Fatalf("%v %s", err, out)
		}
	}
	b.ReportMetric(peapod.Seconds(), "peapod-s")
	fmt.Printf("\n20 pods (one busybox container each), create → all Running:\n")
	fmt.Printf("  %-36s %6.2f s\n", "peapod (kubectl create -f, poll)", peapod.Seconds())
	if _, err := exec.LookPath("podman"); err != nil {
		fmt.Printf("  %-36s %s\n", "podman kube play", "not installed")
		return
	}
	if out, err := exec.Command("podman", "image", "exists", "localhost/busybox:latest").CombinedOutput(); err != nil {
		b.Fatalf("podman has no localhost/busybox:latest (podman import --change 'ENV=PATH=/bin' rootfs.tar localhost/busybox:latest): %v %s", err, out)
	}
	file := filepath.Join(b.TempDir(), "pods.yaml")
	if err := os.WriteFile(file, []byte(startPods("localhost/busybox:latest")), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, err := exec.Command("podman", "kube", "play", file).CombinedOutput()
		podman = time.Since(t0)
		if err != nil {
			exec.Command("podman", "kube", "down", file).Run()
			b.Fatalf("podman kube play: %v\n%s", err, out)
		}
		ps, _ := exec.Command("podman", "ps", "--filter", "name=start-", "--filter", "status=running", "-q").Output()
		running := len(strings.Fields(string(ps)))
		if out, err := exec.Command("podman", "kube", "down", file).CombinedOutput(); err != nil {
			b.Fatalf("podman kube down: %v\n%s", err, out)
		}
		if running != 20 {
			b.Fatalf("podman kube play returned with %d containers running, want 20", running)
		}
	}
	b.ReportMetric(podman.Seconds(), "podman-s")
	fmt.Printf("  %-36s %6.2f s\n", "podman kube play (returns when started)", podman.Seconds())
}
