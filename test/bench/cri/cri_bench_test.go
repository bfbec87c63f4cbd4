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

// startPod runs pod i: RunPodSandbox, CreateContainer and StartContainer of
// a busybox sleep, each timed.
func (r *runner) startPod(ctx context.Context, i int) (id, ctr string, run, create, start time.Duration) {
	b := r.b
	sbc := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("bench-%d", i), Namespace: "cribench", Uid: fmt.Sprintf("%s-%d", r.tag, i)},
		Hostname:     fmt.Sprintf("bench-%d", i),
		LogDirectory: filepath.Join(r.logDir, strconv.Itoa(i)),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
		Image:    &runtimeapi.ImageSpec{Image: r.image},
		Command:  []string{"sleep", "3600"},
		LogPath:  "sleep.log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
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
