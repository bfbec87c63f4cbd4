package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestDefaultSpec(t *testing.T) {
	s := DefaultSpec()
	if s.Process.Rlimits != nil {
		t.Errorf("default spec sets rlimits: %v", s.Process.Rlimits)
	}
	caps := s.Process.Capabilities
	for _, set := range [][]string{caps.Bounding, caps.Permitted, caps.Effective} {
		if len(set) != 14 || !slices.Contains(set, "CAP_NET_BIND_SERVICE") || slices.Contains(set, "CAP_SYS_ADMIN") {
			t.Errorf("capability set %v", set)
		}
	}
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
	if !reflect.DeepEqual(dsts, want) {
		t.Errorf("mounts %v, want %v", dsts, want)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v, read-only %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	// Each call returns its own copy, so callers can change it freely.
	s.Process.Capabilities.Bounding[0] = "changed"
	s.Mounts[0].Options[0] = "changed"
	if again := DefaultSpec(); again.Process.Capabilities.Bounding[0] != "CAP_CHOWN" || again.Mounts[0].Options[0] != "nosuid" {
		t.Error("DefaultSpec shares state between calls")
	}
}

func TestNamespaces(t *testing.T) {
	s := DefaultSpec()
	SetNamespace(s, specs.NetworkNamespace, "/run/netns/x")
	SetNamespace(s, specs.CgroupNamespace, "")
	RemoveNamespace(s, specs.PIDNamespace)
	got := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		if _, dup := got[n.Type]; dup {
			t.Fatalf("namespace %s twice", n.Type)
		}
		got[n.Type] = n.Path
	}
	want := map[specs.LinuxNamespaceType]string{
		specs.IPCNamespace: "", specs.UTSNamespace: "", specs.MountNamespace: "",
		specs.NetworkNamespace: "/run/netns/x", specs.CgroupNamespace: "",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("namespaces %v, want %v", got, want)
	}
	RemoveNamespace(&specs.Spec{}, specs.PIDNamespace)
	empty := &specs.Spec{}
	SetNamespace(empty, specs.UTSNamespace, "")
	if len(empty.Linux.Namespaces) != 1 {
		t.Fatalf("SetNamespace on a spec without Linux: %+v", empty.Linux)
	}
}

func TestAddMount(t *testing.T) {
	s := DefaultSpec()
	n := len(s.Mounts)
	AddMount(s, specs.Mount{Destination: "/dev/shm/", Type: "bind", Source: "/x"})
	AddMount(s, specs.Mount{Destination: "/data", Type: "bind", Source: "/y"})
	if len(s.Mounts) != n+1 {
		t.Fatalf("%d mounts, want %d", len(s.Mounts), n+1)
	}
	var shm []specs.Mount
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" || m.Destination == "/dev/shm/" {
			shm = append(shm, m)
		}
	}
	if len(shm) != 1 || shm[0].Source != "/x" {
		t.Fatalf("/dev/shm mounts %+v, want only the added one", shm)
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv(
		[]string{"PATH=/bin", "A=1", "B=2"},
		"B=3", "C=4", "A=5", "EMPTY=", "C=6",
	)
	want := []string{"PATH=/bin", "A=5", "B=3", "C=6", "EMPTY="}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("MergeEnv = %v, want %v", got, want)
	}
	if got := MergeEnv(nil); len(got) != 0 {
		t.Fatalf("MergeEnv(nil) = %v", got)
	}
}

func TestWriteBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bundle")
	s := DefaultSpec()
	s.Hostname = "first"
	if err := WriteBundle(dir, s); err != nil {
		t.Fatal(err)
	}
	s.Hostname = "second"
	if err := WriteBundle(dir, s); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Hostname != "second" || back.Root.Path != "rootfs" {
		t.Fatalf("read back %+v", back)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("bundle holds %d files, want only config.json", len(entries))
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(file, s); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("WriteBundle into a file: %v, want an error naming it", err)
	}
}

func TestClampOOMScoreAdj(t *testing.T) {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	own, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if got := ClampOOMScoreAdj(own - 1); got != own {
		t.Errorf("ClampOOMScoreAdj(%d) = %d, want %d", own-1, got, own)
	}
	if got := ClampOOMScoreAdj(1000); got != 1000 {
		t.Errorf("ClampOOMScoreAdj(1000) = %d", got)
	}
}

func TestEnvironWithoutNotifySocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("PEAPOD_TEST_KEEP", "1")
	env := Environ()
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "NOTIFY_SOCKET=") }) {
		t.Fatalf("NOTIFY_SOCKET passed to runc: %v", env)
	}
	if !slices.Contains(env, "PEAPOD_TEST_KEEP=1") {
		t.Fatalf("environment lost: %v", env)
	}
}
