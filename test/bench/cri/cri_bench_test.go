// Package cribench compares CRI runtimes through one CRI v1 client:
//
//	PEAPOD_CRI_BENCH='peapod=unix:///run/peapod-…/cri.sock,containerd=unix:///run/…/containerd.sock' \
//	PEAPOD_CRI_BENCH_IMAGE=127.0.0.1:5000/critest/busybox:1.35 \
//	go test -run '^$' -bench CRI -benchtime 1x ./test/bench/cri/
//
// For each endpoint, in order, it pulls the image, runs one warm-up pod, then
// 20 pods one after the other, each RunPodSandbox + CreateContainer +
// StartContainer of a busybox `sleep`; with the 20 running it sums the
// proportional set size (PSS) of every per-pod process — the sandbox's
// process (pause) and the new parents of it and of the container's process
// (shims, monitors), found from the pids in the verbose statuses — and
// divides by 20; then it stops and removes each pod
// (StopPodSandbox + RemovePodSandbox). It prints the medians and the memory
// per pod as a table. Run as root (PSS of other processes), with the
// runtimes already serving; nothing here asserts on time.
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
	var results []result
	for _, ep := range eps {
		b.Run(ep.name, func(b *testing.B) {
			for range b.N {
				r := measure(b, ep, image)
				results = append(results, r)
				b.ReportMetric(ms(r.total), "ms/start")
				b.ReportMetric(ms(r.stopTotal), "ms/stop")
				b.ReportMetric(r.pssPerPod/1e6, "MB-PSS/pod")
			}
		})
	}
	printTable(results)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func measure(b *testing.B, ep endpoint, image string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(ep.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatalf("%s: %v", ep.name, err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	img := runtimeapi.NewImageServiceClient(conn)
	if _, err := img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		b.Fatalf("%s: pull %s: %v", ep.name, image, err)
	}
	logDir := b.TempDir()
	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())

	startPod := func(i int) (id, ctr string, run, create, start time.Duration) {
		sbc := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: fmt.Sprintf("bench-%d", i), Namespace: "cribench", Uid: fmt.Sprintf("%s-%d", tag, i), Attempt: 0},
			Hostname:     fmt.Sprintf("bench-%d", i),
			LogDirectory: filepath.Join(logDir, strconv.Itoa(i)),
			Linux:        &runtimeapi.LinuxPodSandboxConfig{},
		}
		cc := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "3600"},
			LogPath:  "sleep.log",
			Linux:    &runtimeapi.LinuxContainerConfig{},
		}
		t0 := time.Now()
		sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc})
		if err != nil {
			b.Fatalf("%s: RunPodSandbox: %v", ep.name, err)
		}
		t1 := time.Now()
		c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: cc, SandboxConfig: sbc})
		if err != nil {
			b.Fatalf("%s: CreateContainer: %v", ep.name, err)
		}
		t2 := time.Now()
		if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			b.Fatalf("%s: StartContainer: %v", ep.name, err)
		}
		t3 := time.Now()
		return sb.PodSandboxId, c.ContainerId, t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
	}
	pids := func(sandbox, ctr string) [2]int {
		ss, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandbox, Verbose: true})
		if err != nil {
			b.Fatalf("%s: PodSandboxStatus: %v", ep.name, err)
		}
		cs, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr, Verbose: true})
		if err != nil {
			b.Fatalf("%s: ContainerStatus: %v", ep.name, err)
		}
		return [2]int{verbosePid(b, ss.Info), verbosePid(b, cs.Info)}
	}
	stopPod := func(id string) (stop, remove time.Duration) {
		t0 := time.Now()
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			b.Fatalf("%s: StopPodSandbox: %v", ep.name, err)
		}
		t1 := time.Now()
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			b.Fatalf("%s: RemovePodSandbox: %v", ep.name, err)
		}
		return t1.Sub(t0), time.Since(t1)
	}

	// A warm-up pod: first-use costs (image unpack, caches) are not part
	// of a pod start.
	warm, _, _, _, _ := startPod(-1)
	stopPod(warm)

	before := processes()
	var ids []string
	var podPids [][2]int
	var runs, creates, starts, totals []time.Duration
	b.Cleanup(func() {
		for _, id := range ids {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			cancel()
		}
	})
	for i := range pods {
		id, ctr, run, create, start := startPod(i)
		ids = append(ids, id)
		podPids = append(podPids, pids(id, ctr))
		runs, creates, starts = append(runs, run), append(creates, create), append(starts, start)
		totals = append(totals, run+create+start)
	}
	// Let transient helpers (runc, CNI plugins) finish before counting.
	time.Sleep(2 * time.Second)
	pss, byComm := perPodPSS(b, before, podPids)

	var stops, removes, stopTotals []time.Duration
	for len(ids) > 0 {
		s, r := stopPod(ids[0])
		ids = ids[1:]
		stops, removes, stopTotals = append(stops, s), append(removes, r), append(stopTotals, s+r)
	}
	for k := range byComm {
		byComm[k] /= pods
	}
	return result{
		name: ep.name,
		run:  median(runs), create: median(creates), start: median(starts), total: median(totals),
		stopPod: median(stops), removePod: median(removes), stopTotal: median(stopTotals),
		pssPerPod: pss / pods, byComm: byComm,
	}
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

func printTable(rs []result) {
	if len(rs) == 0 {
		return
	}
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
	fmt.Print(sb.String())
}
