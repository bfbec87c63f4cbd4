package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// allocEnv makes the test binary a child that waits for a byte on stdin and
// then allocates memory until the OOM killer ends it.
const allocEnv = "PEAPOD_CGROUPS_TEST_ALLOC"

func TestMain(m *testing.M) {
	if os.Getenv(allocEnv) == "1" {
		io.ReadFull(os.Stdin, make([]byte, 1))
		var chunks [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			chunks = append(chunks, b)
		}
	}
	os.Exit(m.Run())
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (CI=true, refusing to skip)")
	}
	t.Skip("this test needs root")
}

// hierarchies returns the directories where a cgroup path lives: one per
// mounted v1 hierarchy (named and unified ones included), or the v2 mount.
func hierarchies(t testing.TB) []string {
	t.Helper()
	if cgroups.IsCgroup2UnifiedMode() {
		return []string{unifiedMount}
	}
	mounts, err := cgroups.GetCgroupMounts(true)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, mt := range mounts {
		dirs = append(dirs, mt.Mountpoint)
	}
	if cgroups.IsCgroup2HybridMode() {
		dirs = append(dirs, filepath.Join(unifiedMount, "unified"))
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// testManager returns a manager under a root of its own and removes that
// root from every hierarchy afterwards, checking that it is gone.
func testManager(t *testing.T) *Manager {
	t.Helper()
	requireRoot(t)
	root := fmt.Sprintf("/peapod-test-%d", os.Getpid())
	m, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, h := range hierarchies(t) {
			dir := filepath.Join(h, root)
			if err := cgroups.RemovePath(dir); err != nil {
				t.Errorf("remove %s: %v", dir, err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind", dir)
			}
		}
	})
	return m
}

func readFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func ptr[T any](v T) *T { return &v }

// startInCgroup starts a shell with a child in the cgroup at path (as runc
// puts a container below its pod).
func startInCgroup(t *testing.T, m *Manager, path string) *exec.Cmd {
	t.Helper()
	// The shell forks only once it is in the cgroup: it first reads a line.
	cmd := exec.Command("sh", "-c", "read x; sleep 1000 & exec sleep 1000")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	cm, err := m.controllers(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestPodLifecycle(t *testing.T) {
	m := testManager(t)
	path := m.PodPath("Burstable", "0a1b2c3d-test")
	if want := m.Root() + "/burstable/pod0a1b2c3d-test"; path != want {
		t.Fatalf("PodPath = %s, want %s", path, want)
	}
	r := &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000))},
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(100))},
	}
	if err := m.EnsurePod(path, r); err != nil {
		t.Fatal(err)
	}
	// Idempotent, and it updates the resources.
	r.Memory.Limit = ptr(int64(96 << 20))
	if err := m.EnsurePod(path, r); err != nil {
		t.Fatal(err)
	}

	for _, h := range hierarchies(t) {
		if _, err := os.Stat(filepath.Join(h, path)); err != nil {
			t.Errorf("pod cgroup missing in %s: %v", h, err)
		}
	}
	if m.V2() {
		dir := filepath.Join(unifiedMount, path)
		want := map[string]string{"cpu.max": "50000 100000", "memory.max": strconv.Itoa(96 << 20), "pids.max": "100",
			"cpu.weight": strconv.FormatUint(cgroups.ConvertCPUSharesToCgroupV2Value(512), 10)}
		for f, v := range want {
			if got := readFile(t, dir, f); got != v {
				t.Errorf("%s = %q, want %q", f, got, v)
			}
		}
	} else {
		want := []struct{ ctrl, file, value string }{
			{"cpu", "cpu.shares", "512"},
			{"cpu", "cpu.cfs_quota_us", "50000"},
			{"cpu", "cpu.cfs_period_us", "100000"},
			{"memory", "memory.limit_in_bytes", strconv.Itoa(96 << 20)},
			{"pids", "pids.max", "100"},
		}
		for _, w := range want {
			if got := readFile(t, filepath.Join(unifiedMount, w.ctrl, path), w.file); got != w.value {
				t.Errorf("%s/%s = %q, want %q", w.ctrl, w.file, got, w.value)
			}
		}
		// cpuset is copied down so that processes can join.
		if got := readFile(t, filepath.Join(unifiedMount, "cpuset", path), "cpuset.cpus"); got == "" {
			t.Error("pod cpuset.cpus is empty")
		}
	}

	ctr := path + "/ctr1"
	cmd := startInCgroup(t, m, ctr)
	st, err := m.Stats(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids < 1 || st.MemoryUsageBytes == 0 || st.MemoryLimitBytes != 96<<20 {
		t.Errorf("pod stats %+v: want pids >= 1, memory usage > 0, limit %d", st, 96<<20)
	}
	if st.MemoryWorkingSetBytes > st.MemoryUsageBytes {
		t.Errorf("working set %d above usage %d", st.MemoryWorkingSetBytes, st.MemoryUsageBytes)
	}
	if _, err := m.Stats(ctr); err != nil {
		t.Errorf("container stats: %v", err)
	}
	if oom, err := m.OOMKilled(path); err != nil || oom {
		t.Errorf("OOMKilled = %v, %v; want false", oom, err)
	}

	if err := m.RemovePod(path); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("process in the pod ended with %v, want SIGKILL", err)
	}
	for _, h := range hierarchies(t) {
		if _, err := os.Stat(filepath.Join(h, path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pod cgroup left in %s: %v", h, err)
		}
	}
	if err := m.RemovePod(path); err != nil {
		t.Fatalf("second RemovePod: %v", err)
	}
	if _, err := m.Stats(path); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stats of a removed pod = %v, want ErrNotFound", err)
	}
}

func TestBestEffortParent(t *testing.T) {
	m := testManager(t)
	path := m.PodPath("BestEffort", "be-test")
	if err := m.EnsurePod(path, PodResourcesFor(podWith(container("c", nil, nil)), 0)); err != nil {
		t.Fatal(err)
	}
	defer m.RemovePod(path)
	if m.V2() {
		want := strconv.FormatUint(cgroups.ConvertCPUSharesToCgroupV2Value(MinShares), 10)
		if got := readFile(t, filepath.Join(unifiedMount, m.Root(), "besteffort"), "cpu.weight"); got != want {
			t.Errorf("besteffort cpu.weight = %s, want %s", got, want)
		}
		return
	}
	if got := readFile(t, filepath.Join(unifiedMount, "cpu", m.Root(), "besteffort"), "cpu.shares"); got != "2" {
		t.Errorf("besteffort cpu.shares = %s, want 2", got)
	}
	if got := readFile(t, filepath.Join(unifiedMount, "cpu", path), "cpu.shares"); got != "2" {
		t.Errorf("pod cpu.shares = %s, want 2", got)
	}
}

func TestEnsurePodRollsBack(t *testing.T) {
	m := testManager(t)
	path := m.PodPath("Guaranteed", "bad-test")
	// A quota without a valid period is refused by the kernel.
	r := &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(500)), Period: ptr(uint64(1))}}
	if err := m.EnsurePod(path, r); err == nil {
		t.Fatal("EnsurePod with an invalid CFS period succeeded")
	}
	for _, h := range hierarchies(t) {
		if _, err := os.Stat(filepath.Join(h, path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("failed EnsurePod left %s: %v", filepath.Join(h, path), err)
		}
	}
}

func TestOOMKilled(t *testing.T) {
	m := testManager(t)
	path := m.PodPath("Guaranteed", "oom-test")
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(32 << 20))}}
	if err := m.EnsurePod(path, r); err != nil {
		t.Fatal(err)
	}
	defer m.RemovePod(path)
	ctr := path + "/ctr"
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), allocEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cm, err := m.controllers(ctr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.Apply(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	stdin.Write([]byte{1})
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("allocating child ended with %v, want SIGKILL", err)
	}
	for _, p := range []string{ctr, path} {
		oom, err := m.OOMKilled(p)
		if err != nil {
			t.Fatal(err)
		}
		if !oom {
			t.Errorf("OOMKilled(%s) = false after an OOM kill", p)
		}
	}
}

func TestPathsOutsideRootRefused(t *testing.T) {
	m, err := New("/peapod-x")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/peapod-x", "/peapod-x/../etc", "/other/pod1", "peapod-x/pod1", m.PodPath("Burstable", "../../x")} {
		if err := m.EnsurePod(p, nil); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("EnsurePod(%q) = %v, want ErrInvalidPath", p, err)
		}
		if err := m.RemovePod(p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("RemovePod(%q) = %v, want ErrInvalidPath", p, err)
		}
	}
	if _, err := New("/"); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("New(/) = %v, want ErrInvalidPath", err)
	}
}

func TestPodPath(t *testing.T) {
	m, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	for qos, want := range map[string]string{
		"Guaranteed": "/peapod/podU",
		"Burstable":  "/peapod/burstable/podU",
		"BestEffort": "/peapod/besteffort/podU",
	} {
		if got := m.PodPath(qos, "U"); got != want {
			t.Errorf("PodPath(%s) = %s, want %s", qos, got, want)
		}
	}
}

func TestUpdateQOS(t *testing.T) {
	m := testManager(t)
	pods := []*corev1.Pod{
		podWith(container("a", list("cpu", "500m"), nil)),
		podWith(container("b", list("cpu", "250m", "memory", "1Mi"), list("memory", "2Mi"))),
		podWith(container("g", list("cpu", "1", "memory", "1Gi"), list("cpu", "1", "memory", "1Gi"))),
		podWith(container("be", nil, nil)),
	}
	if err := m.UpdateQOS(pods); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"burstable": MilliCPUToShares(750), "besteffort": MinShares}
	for parent, shares := range want {
		if m.V2() {
			w := strconv.FormatUint(cgroups.ConvertCPUSharesToCgroupV2Value(shares), 10)
			if got := readFile(t, filepath.Join(unifiedMount, m.Root(), parent), "cpu.weight"); got != w {
				t.Errorf("%s cpu.weight = %s, want %s", parent, got, w)
			}
			continue
		}
		if got := readFile(t, filepath.Join(unifiedMount, "cpu", m.Root(), parent), "cpu.shares"); got != strconv.FormatUint(shares, 10) {
			t.Errorf("%s cpu.shares = %s, want %d", parent, got, shares)
		}
	}
}

func TestRemovePodKillsForkingProcesses(t *testing.T) {
	m := testManager(t)
	path := m.PodPath("Burstable", "fork-test")
	r := &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(64))}}
	if err := m.EnsurePod(path, r); err != nil {
		t.Fatal(err)
	}
	// A shell that keeps forking short-lived children up to the pids limit.
	cmd := exec.Command("sh", "-c", "read x; while :; do sleep 0.01 & done")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cm, err := m.controllers(path+"/ctr", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.Apply(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n"))
	for {
		st, err := m.Stats(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pids > 5 {
			break
		}
	}
	if err := m.RemovePod(path); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, h := range hierarchies(t) {
		if _, err := os.Stat(filepath.Join(h, path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pod cgroup left in %s: %v", h, err)
		}
	}
}

func BenchmarkEnsureRemovePod(b *testing.B) {
	requireRoot(b)
	m, err := New(fmt.Sprintf("/peapod-bench-%d", os.Getpid()))
	if err != nil {
		b.Fatal(err)
	}
	r := PodResourcesFor(podWith(container("a", list("cpu", "100m", "memory", "64Mi"), list("cpu", "100m", "memory", "64Mi"))), 1024)
	for i := 0; b.Loop(); i++ {
		path := m.PodPath("Guaranteed", strconv.Itoa(i))
		if err := m.EnsurePod(path, r); err != nil {
			b.Fatal(err)
		}
		if err := m.RemovePod(path); err != nil {
			b.Fatal(err)
		}
	}
	for _, h := range hierarchies(b) {
		if err := cgroups.RemovePath(filepath.Join(h, m.Root())); err != nil {
			b.Error(err)
		}
	}
}
