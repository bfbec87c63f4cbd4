// Package cribench compares CRI runtimes through one CRI v1 client:
//
//	PEAPOD_CRI_BENCH='peapod=unix:///run/peapod-…/cri.sock,containerd=unix:///run/…/containerd.sock' \
//	PEAPOD_CRI_BENCH_IMAGE=127.0.0.1:5000/critest/busybox:1.35 \
//	go test -run '^$' -bench CRI -benchtime 1x ./test/bench/cri/
//
// For each endpoint it pulls the image and runs one warm-up pod; then it
// runs 20 pods on each, one after the other and interleaving the endpoints
// (so that load from elsewhere falls on all alike), each RunPodSandbox +
// CreateContainer + StartContainer of a busybox `sleep`. With the 20 pods of
// each running it sums the proportional set size (PSS) of every per-pod
// process — the sandbox's process (pause) and the new parents of it and of
// the container's process (shims, monitors), found from the pids in the
// verbose statuses — and divides by 20; then it stops and removes each pod
// (StopPodSandbox + RemovePodSandbox). It prints the medians and the memory
// per pod as a table. Run as root (PSS of other processes), with the
// runtimes already serving; nothing here asserts on time.
//
// BenchmarkExecSync (-bench ExecSync), with the same settings, measures
// the CPU and wall time of one ExecSync, what an exec probe costs.
//
// The image must be pullable by every runtime, e.g. from a plain-HTTP
// registry on 127.0.0.1 (peapod: DIR/certs.d/127.0.0.1:5000/hosts.toml with
// server = "http://127.0.0.1:5000"). containerd 1.6 (Debian's) was run with
// a config of its own: root, state and grpc address in directories of their
// own; the CRI plugin's sandbox_image from that registry,
// restrict_oom_score_adj = true, runc v2 with BinaryName /usr/sbin/runc and
// SystemdCgroup false, cni conf_dir holding one conflist (bridge with
// isGateway, ipMasq and hairpinMode on a bridge and subnet of its own,
// host-local, portmap), registry config_path with the same hosts.toml.
package cribench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const pods = 20

type endpoint struct{ name, addr string }

func endpoints(b *testing.B) ([]endpoint, string) {
	spec, image := os.Getenv("PEAPOD_CRI_BENCH"), os.Getenv("PEAPOD_CRI_BENCH_IMAGE")
	if spec == "" || image == "" {
		msg := "set PEAPOD_CRI_BENCH=name=unix:///socket,… and PEAPOD_CRI_BENCH_IMAGE=<busybox image the runtimes can pull>"
		if os.Getenv("CI") == "true" {
			b.Fatal(msg)
		}
		b.Skip(msg)
	}
	if os.Geteuid() != 0 {
		b.Fatal("run as root: the memory measurement reads other processes' smaps_rollup")
	}
	var eps []endpoint
	for _, f := range strings.Split(spec, ",") {
		name, addr, ok := strings.Cut(f, "=")
		if !ok {
			b.Fatalf("PEAPOD_CRI_BENCH: %q is not name=address", f)
		}
		eps = append(eps, endpoint{name, addr})
	}
	return eps, image
}

type result struct {
	name                          string
	run, create, start, total     time.Duration
	stopPod, removePod, stopTotal time.Duration
	pssPerPod                     float64 // bytes
	byComm                        map[string]float64
}

func BenchmarkCRI(b *testing.B) {
	eps, image := endpoints(b)
	for range b.N {
		results := measure(b, eps, image)
		for _, r := range results {
			b.ReportMetric(ms(r.total), r.name+"-ms/start")
			b.ReportMetric(ms(r.stopTotal), r.name+"-ms/stop")
			b.ReportMetric(r.pssPerPod/1e6, r.name+"-MB-PSS/pod")
		}
		b.Log(table(results))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runner drives one endpoint.
type runner struct {
	b       *testing.B
	ep      endpoint
	image   string
	rt      runtimeapi.RuntimeServiceClient
	logDir  string
	tag     string
	ids     []string
	podPids [][2]int

	runs, creates, starts, totals []time.Duration
	stops, removes, stopTotals    []time.Duration
}

func newRunner(b *testing.B, ctx context.Context, ep endpoint, image string) *runner {
	conn, err := grpc.NewClient(ep.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatalf("%s: %v", ep.name, err)
	}
	b.Cleanup(func() { conn.Close() })
	r := &runner{
		b: b, ep: ep, image: image,
		rt:     runtimeapi.NewRuntimeServiceClient(conn),
		logDir: b.TempDir(),
		tag:    fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()),
	}
	img := runtimeapi.NewImageServiceClient(conn)
	if _, err := img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		b.Fatalf("%s: pull %s: %v", ep.name, image, err)
	}
	b.Cleanup(func() {
		for _, id := range r.ids {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			r.rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			r.rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			cancel()
		}
	})
	return r
}

func (r *runner) sandboxConfig(i int) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("bench-%d", i), Namespace: "cribench", Uid: fmt.Sprintf("%s-%d", r.tag, i)},
		Hostname:     fmt.Sprintf("bench-%d", i),
		LogDirectory: filepath.Join(r.logDir, strconv.Itoa(i)),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

// sleepConfig is a busybox sleep named name.
func (r *runner) sleepConfig(name string, sc *runtimeapi.LinuxContainerSecurityContext) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: r.image},
		Command:  []string{"sleep", "3600"},
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
	}
}

// startPod runs pod i: RunPodSandbox, CreateContainer and StartContainer of
// a busybox sleep, each timed.
func (r *runner) startPod(ctx context.Context, i int) (id, ctr string, run, create, start time.Duration) {
	b := r.b
	sbc, cc := r.sandboxConfig(i), r.sleepConfig("sleep", nil)
	t0 := time.Now()
	sb, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc})
	if err != nil {
		b.Fatalf("%s: RunPodSandbox: %v", r.ep.name, err)
	}
	r.ids = append(r.ids, sb.PodSandboxId)
	t1 := time.Now()
	c, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: cc, SandboxConfig: sbc})
	if err != nil {
		b.Fatalf("%s: CreateContainer: %v", r.ep.name, err)
	}
	t2 := time.Now()
	if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		b.Fatalf("%s: StartContainer: %v", r.ep.name, err)
	}
	t3 := time.Now()
	return sb.PodSandboxId, c.ContainerId, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
}

// stopPod stops and removes the oldest pod, each step timed.
func (r *runner) stopPod(ctx context.Context) (stop, remove time.Duration) {
	id := r.ids[0]
	t0 := time.Now()
	if _, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		r.b.Fatalf("%s: StopPodSandbox: %v", r.ep.name, err)
	}
	t1 := time.Now()
	if _, err := r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		r.b.Fatalf("%s: RemovePodSandbox: %v", r.ep.name, err)
	}
	r.ids = r.ids[1:]
	return t1.Sub(t0), time.Since(t1)
}

// pids are the processes of the pod's sandbox and container.
func (r *runner) pids(ctx context.Context, sandbox, ctr string) [2]int {
	ss, err := r.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandbox, Verbose: true})
	if err != nil {
		r.b.Fatalf("%s: PodSandboxStatus: %v", r.ep.name, err)
	}
	cs, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr, Verbose: true})
	if err != nil {
		r.b.Fatalf("%s: ContainerStatus: %v", r.ep.name, err)
	}
	return [2]int{verbosePid(r.b, ss.Info), verbosePid(r.b, cs.Info)}
}

// measure interleaves the runtimes pod by pod (in a rotating order), so
// that load from elsewhere on the machine falls on all of them alike.
func measure(b *testing.B, eps []endpoint, image string) []result {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var rs []*runner
	for _, ep := range eps {
		r := newRunner(b, ctx, ep, image)
		// A warm-up pod: first-use costs (image unpack, caches) are not
		// part of a pod start.
		r.startPod(ctx, -1)
		r.stopPod(ctx)
		rs = append(rs, r)
	}
	before := processes()
	for i := range pods {
		for k := range rs {
			r := rs[(i+k)%len(rs)]
			id, ctr, run, create, start := r.startPod(ctx, i)
			r.podPids = append(r.podPids, r.pids(ctx, id, ctr))
			r.runs, r.creates, r.starts = append(r.runs, run), append(r.creates, create), append(r.starts, start)
			r.totals = append(r.totals, run+create+start)
		}
	}
	// Let transient helpers (runc, CNI plugins) finish before counting.
	time.Sleep(2 * time.Second)
	var results []result
	for _, r := range rs {
		pss, byComm := perPodPSS(b, before, r.podPids)
		for k := range byComm {
			byComm[k] /= pods
		}
		results = append(results, result{name: r.ep.name, pssPerPod: pss / pods, byComm: byComm})
	}
	for i := range pods {
		for k := range rs {
			r := rs[(i+k)%len(rs)]
			s, rm := r.stopPod(ctx)
			r.stops, r.removes, r.stopTotals = append(r.stops, s), append(r.removes, rm), append(r.stopTotals, s+rm)
		}
	}
	for i, r := range rs {
		res := &results[i]
		res.run, res.create, res.start, res.total = median(r.runs), median(r.creates), median(r.starts), median(r.totals)
		res.stopPod, res.removePod, res.stopTotal = median(r.stops), median(r.removes), median(r.stopTotals)
	}
	return results
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// processes lists the PIDs alive now.
func processes() map[int]bool {
	m := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			m[pid] = true
		}
	}
	return m
}

// verbosePid reads "pid" from a verbose status's info JSON, which both
// containerd and peapod give.
func verbosePid(b *testing.B, info map[string]string) int {
	var v struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil || v.Pid <= 0 {
		b.Fatalf("no pid in verbose status info %q: %v", info["info"], err)
	}
	return v.Pid
}

func ppid(pid int) int {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid …; comm may hold spaces.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// perPodPSS sums the PSS of every per-pod process, in total and by command
// name: each pod's sandbox process (pause) and the parents of it and of the
// container's process (shims, monitors) that were started with the pods —
// not the runtime daemon, and not the workload (`sleep`) itself.
func perPodPSS(b *testing.B, before map[int]bool, podPids [][2]int) (float64, map[string]float64) {
	count := map[int]bool{}
	for _, pp := range podPids {
		sandbox, ctr := pp[0], pp[1]
		count[sandbox] = true
		for _, p := range []int{ppid(sandbox), ppid(ctr)} {
			if p > 1 && !before[p] && p != sandbox {
				count[p] = true
			}
		}
	}
	var total float64
	byComm := map[string]float64{}
	for pid := range count {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			b.Fatalf("per-pod process %d: %v", pid, err)
		}
		pss, err := pssOf(pid)
		if err != nil {
			b.Fatalf("PSS of %d: %v", pid, err)
		}
		total += pss
		byComm[strings.TrimSpace(string(comm))] += pss
	}
	return total, byComm
}

// pssOf reads the Pss line of /proc/PID/smaps_rollup, in bytes.
func pssOf(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "Pss:" {
			kb, err := strconv.ParseFloat(fields[1], 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no Pss in smaps_rollup of %d", pid)
}

func table(rs []result) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nCRI, medians of %d pods (busybox sleep), memory with %d pods running\n", pods, pods)
	fmt.Fprintf(&sb, "%-12s %9s %9s %9s %10s %10s %10s %10s %11s  %s\n",
		"runtime", "RunPodSb", "Create", "Start", "start(sum)", "StopPodSb", "RemovePod", "stop(sum)", "PSS/pod MB", "PSS/pod by process (MB)")
	for _, r := range rs {
		var parts []string
		names := make([]string, 0, len(r.byComm))
		for k := range r.byComm {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, r.byComm[k]/1e6))
		}
		fmt.Fprintf(&sb, "%-12s %8.1fms %8.1fms %8.1fms %9.1fms %9.1fms %9.1fms %9.1fms %11.2f  %s\n",
			r.name, ms(r.run), ms(r.create), ms(r.start), ms(r.total), ms(r.stopPod), ms(r.removePod), ms(r.stopTotal),
			r.pssPerPod/1e6, strings.Join(parts, ", "))
	}
	return sb.String()
}

// execs is how many ExecSyncs each container gets in BenchmarkExecSync.
const execs = 100

// execCases are the containers of the ExecSync pod, one per seccomp profile:
// a runtime may exec differently in a container with a filter to install.
var execCases = []struct {
	name    string
	seccomp runtimeapi.SecurityProfile_ProfileType
}{
	{"unconfined", runtimeapi.SecurityProfile_Unconfined},
	{"RuntimeDefault", runtimeapi.SecurityProfile_RuntimeDefault},
}

// BenchmarkExecSync measures what an exec probe costs: the CPU and the wall
// time of one ExecSync of `true` (timeout 10 s).
//
// Each endpoint runs one pod with a busybox sleep per execCases entry. After
// a few warm-up execs it measures, over 10 s with nothing to do, the CPU
// that the runtime's processes use idle; then for each case it runs 100
// ExecSyncs per endpoint, interleaving the endpoints exec by exec. The CPU
// is read from /proc/PID/stat (utime+stime+cutime+cstime, so children the
// process has reaped are included) of the runtime's processes: the daemon
// (the process listening on the CRI socket) with its running children, and
// the pod's own processes, the parents of the sandbox's and containers'
// processes (shims, monitors), with their idle use over the same time
// subtracted. Every process an exec starts (runc, runc init, the command,
// peapod-enter's child) is a child that one of them reaps. The container's
// cgroup (cpuacct.usage on cgroup v1) is reported too: the part of that CPU spent in the container (the command,
// and runc init after joining it) — already within the processes' CPU,
// never added to it.
func BenchmarkExecSync(b *testing.B) {
	eps, image := endpoints(b)
	for range b.N {
		results := measureExec(b, eps, image)
		for _, r := range results {
			b.ReportMetric(r.daemon+r.pod, r.name+"-"+r.seccomp+"-cpu-ms/exec")
			b.ReportMetric(ms(r.wall), r.name+"-"+r.seccomp+"-wall-ms/exec")
		}
		b.Log(execTable(results))
	}
}

type execResult struct {
	name, seccomp string
	// CPU milliseconds per exec: the daemon, the pod's processes (shims,
	// monitors) and, within those, the container's cgroup.
	daemon, pod, cgroup float64
	// CPU milliseconds per second that the daemon and pod processes use idle.
	idle float64
	wall time.Duration // median ExecSync
	// podProcs names the pod's processes counted.
	podProcs string
}

// execPod is one endpoint's pod and the processes charged for its execs.
type execPod struct {
	r       *runner
	daemon  int
	pod     []int
	ctrs    []string // by execCases
	cgroups []string // CPU usage file of each container's cgroup
	walls   [][]time.Duration
}

// cpuSample is the CPU used so far, in milliseconds.
type cpuSample struct {
	daemon, pod float64
	cgroups     []float64
}

func measureExec(b *testing.B, eps []endpoint, image string) []execResult {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var ps []*execPod
	for _, ep := range eps {
		p := startExecPod(b, ctx, newRunner(b, ctx, ep, image))
		for c := range execCases {
			for range 5 {
				p.exec(ctx, c)
			}
		}
		p.walls = make([][]time.Duration, len(execCases))
		ps = append(ps, p)
	}

	// idle is the CPU per second that each runtime's processes use with
	// nothing to do.
	idle := make([]cpuSample, len(ps))
	before := samples(b, ps)
	t0 := time.Now()
	time.Sleep(10 * time.Second)
	after, secs := samples(b, ps), time.Since(t0).Seconds()
	for k := range ps {
		idle[k].daemon = (after[k].daemon - before[k].daemon) / secs
		idle[k].pod = (after[k].pod - before[k].pod) / secs
	}

	var results []execResult
	for c, ec := range execCases {
		before, t0 := samples(b, ps), time.Now()
		for i := range execs {
			for k := range ps {
				p := ps[(i+k)%len(ps)]
				p.walls[c] = append(p.walls[c], p.exec(ctx, c))
			}
		}
		after, secs := samples(b, ps), time.Since(t0).Seconds()
		for k, p := range ps {
			results = append(results, execResult{
				name: p.r.ep.name, seccomp: ec.name, idle: idle[k].daemon + idle[k].pod,
				daemon: (after[k].daemon - before[k].daemon - idle[k].daemon*secs) / execs,
				pod:    (after[k].pod - before[k].pod - idle[k].pod*secs) / execs,
				cgroup: (after[k].cgroups[c] - before[k].cgroups[c]) / execs,
				wall:   median(p.walls[c]), podProcs: p.procs(),
			})
		}
	}
	return results
}

// startExecPod runs the pod of BenchmarkExecSync and finds its processes.
func startExecPod(b *testing.B, ctx context.Context, r *runner) *execPod {
	sbc := r.sandboxConfig(0)
	sb, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc})
	if err != nil {
		b.Fatalf("%s: RunPodSandbox: %v", r.ep.name, err)
	}
	r.ids = append(r.ids, sb.PodSandboxId)
	p := &execPod{r: r, daemon: listener(b, r.ep.addr)}
	var pids []int
	for _, c := range execCases {
		sc := &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: c.seccomp}}
		cc := r.sleepConfig("sleep-"+strings.ToLower(c.name), sc)
		ctr, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: cc, SandboxConfig: sbc})
		if err != nil {
			b.Fatalf("%s: CreateContainer: %v", r.ep.name, err)
		}
		if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
			b.Fatalf("%s: StartContainer: %v", r.ep.name, err)
		}
		pp := r.pids(ctx, sb.PodSandboxId, ctr.ContainerId)
		if len(pids) == 0 {
			pids = append(pids, pp[0])
		}
		pids = append(pids, pp[1])
		cg, err := cgroupCPUFile(pp[1])
		if err != nil {
			b.Fatalf("%s: %v", r.ep.name, err)
		}
		p.ctrs, p.cgroups = append(p.ctrs, ctr.ContainerId), append(p.cgroups, cg)
	}
	for _, pid := range pids {
		if pp := ppid(pid); pp > 1 && pp != p.daemon && pp != pids[0] && !slices.Contains(p.pod, pp) {
			p.pod = append(p.pod, pp)
		}
	}
	return p
}

// procs names the pod's processes, by command name.
func (p *execPod) procs() string {
	var names []string
	for _, pid := range p.pod {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			p.r.b.Fatalf("%s pod process %d: %v", p.r.ep.name, pid, err)
		}
		names = append(names, strings.TrimSpace(string(comm)))
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// exec runs `true` in container c and returns how long ExecSync took.
func (p *execPod) exec(ctx context.Context, c int) time.Duration {
	t0 := time.Now()
	resp, err := p.r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: p.ctrs[c], Cmd: []string{"true"}, Timeout: 10})
	d := time.Since(t0)
	if err != nil {
		p.r.b.Fatalf("%s: ExecSync: %v", p.r.ep.name, err)
	}
	if resp.ExitCode != 0 {
		p.r.b.Fatalf("%s: ExecSync of true: exit code %d, stderr %q", p.r.ep.name, resp.ExitCode, resp.Stderr)
	}
	return d
}

func samples(b *testing.B, ps []*execPod) []cpuSample {
	out := make([]cpuSample, len(ps))
	for k, p := range ps {
		s := &out[k]
		var err error
		if s.daemon, err = treeCPUTime(p.daemon); err != nil {
			b.Fatalf("%s daemon: %v", p.r.ep.name, err)
		}
		for _, pid := range p.pod {
			t, err := cpuTime(pid)
			if err != nil {
				b.Fatalf("%s pod process: %v", p.r.ep.name, err)
			}
			s.pod += t
		}
		for _, f := range p.cgroups {
			t, err := cgroupCPU(f)
			if err != nil {
				b.Fatalf("%s: %v", p.r.ep.name, err)
			}
			s.cgroups = append(s.cgroups, t)
		}
	}
	return out
}

// clockTicks is USER_HZ, the unit of times in /proc/PID/stat: 100 on every
// Linux architecture Go supports but alpha and ia64.
const clockTicks = 100

// cpuTime is the CPU a process has used and that of the children it has
// reaped (utime, stime, cutime, cstime), in milliseconds.
func cpuTime(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("CPU time of %d: %w", pid, err)
	}
	// Fields after "pid (comm)": state is field 3, utime..cstime 14..17.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("CPU time of %d: short /proc/%d/stat", pid, pid)
	}
	var ticks uint64
	for _, s := range f[11:15] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU time of %d: %w", pid, err)
		}
		ticks += n
	}
	return float64(ticks) * 1000 / clockTicks, nil
}

// treeCPUTime is cpuTime of pid and of its children still running (such as
// peapod's exec server, which reaps the commands it starts).
func treeCPUTime(pid int) (float64, error) {
	sum, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, l := range lists {
		b, _ := os.ReadFile(l)
		for _, c := range strings.Fields(string(b)) {
			child, _ := strconv.Atoi(c)
			if t, err := cpuTime(child); err == nil { // it may have exited since
				sum += t
			}
		}
	}
	return sum, nil
}

// cgroupCPUFile names the file that counts the CPU of pid's cgroup:
// cpuacct.usage on cgroup v1, else cpu.stat on v2.
func cgroupCPUFile(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", fmt.Errorf("cgroup of %d: %w", pid, err)
	}
	v2 := ""
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if slices.Contains(strings.Split(parts[1], ","), "cpuacct") {
			return filepath.Join("/sys/fs/cgroup", parts[1], parts[2], "cpuacct.usage"), nil
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = filepath.Join("/sys/fs/cgroup", parts[2], "cpu.stat")
		}
	}
	if v2 == "" {
		return "", fmt.Errorf("cgroup of %d: no cpuacct controller and no cgroup v2", pid)
	}
	return v2, nil
}

// cgroupCPU reads a file named by cgroupCPUFile, in milliseconds.
func cgroupCPU(file string) (float64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("cgroup CPU: %w", err)
	}
	if filepath.Base(file) == "cpuacct.usage" {
		ns, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cgroup CPU in %s: %w", file, err)
		}
		return float64(ns) / 1e6, nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cgroup CPU in %s: %w", file, err)
			}
			return float64(us) / 1e3, nil
		}
	}
	return 0, fmt.Errorf("cgroup CPU: no usage_usec in %s", file)
}

// listener finds the process listening on a unix:// CRI address: the
// socket's inode in /proc/net/unix, then the process holding it.
func listener(b *testing.B, addr string) int {
	path, ok := strings.CutPrefix(addr, "unix://")
	if !ok {
		b.Fatalf("%s: not a unix:// address; the daemon is found by its socket", addr)
	}
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		b.Fatalf("find the daemon of %s: %v", addr, err)
	}
	inode := ""
	for _, line := range strings.Split(string(data), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path; Flags 00010000
		// is __SO_ACCEPTCON, a listening socket.
		f := strings.Fields(line)
		if len(f) == 8 && f[7] == path && f[3] == "00010000" {
			inode = f[6]
		}
	}
	if inode == "" {
		b.Fatalf("find the daemon of %s: nobody listens there", addr)
	}
	want := "socket:[" + inode + "]"
	for pid := range processes() {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == want {
				return pid
			}
		}
	}
	b.Fatalf("find the daemon of %s: no process holds socket %s", addr, inode)
	return 0
}

func execTable(rs []execResult) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nExecSync of `true`, %d per container, endpoints interleaved; CPU ms per exec (idle use subtracted); cgroup is part of daemon+pod\n", execs)
	fmt.Fprintf(&sb, "%-12s %-15s %9s %9s %9s %9s %10s %10s  %s\n",
		"runtime", "seccomp", "CPU ms", "daemon", "pod", "cgroup", "wall(med)", "idle ms/s", "pod processes")
	for _, r := range rs {
		fmt.Fprintf(&sb, "%-12s %-15s %9.2f %9.2f %9.2f %9.2f %8.1fms %10.2f  %s\n",
			r.name, r.seccomp, r.daemon+r.pod, r.daemon, r.pod, r.cgroup, ms(r.wall), r.idle, r.podProcs)
	}
	return sb.String()
}
