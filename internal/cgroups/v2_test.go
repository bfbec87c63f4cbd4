package cgroups

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/cgroups"
)

// v2ChildEnv names the root a re-executed test binary uses as the v2 child.
const v2ChildEnv = "PEAPOD_CGROUPS_V2_ROOT"

// TestV2OnHybridHost runs the v2 code paths on a v1 hybrid host: a child test
// process gets a private mount namespace in which the (controller-less)
// unified hierarchy is mounted over /sys/fs/cgroup, so the library sees a
// pure v2 host. Limits cannot be checked there (no controllers); the layout,
// killing and removal can.
func TestV2OnHybridHost(t *testing.T) {
	requireRoot(t)
	if cgroups.IsCgroup2UnifiedMode() {
		t.Log("host is cgroup v2: the other tests cover it")
		return
	}
	unified := filepath.Join(unifiedMount, "unified")
	if !cgroups.IsCgroup2HybridMode() {
		t.Log("no unified hierarchy on this v1 host: nothing to run the v2 paths on")
		return
	}
	root := fmt.Sprintf("/peapod-test-v2-%d", os.Getpid())
	script := `mount --make-rprivate / && mount --bind "$1" /sys/fs/cgroup && exec "$0" -test.run='^TestV2Child$' -test.v`
	cmd := exec.Command("unshare", "-m", "sh", "-c", script, os.Args[0], unified)
	cmd.Env = append(os.Environ(), v2ChildEnv+"="+root)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestV2Child") {
		t.Fatalf("v2 child: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(unified, root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("v2 child left %s: %v", filepath.Join(unified, root), err)
	}
}

// TestV2Child is TestV2OnHybridHost's child; it only runs there.
func TestV2Child(t *testing.T) {
	root := os.Getenv(v2ChildEnv)
	if root == "" {
		t.Skip("runs only as the child of TestV2OnHybridHost")
	}
	m, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer cgroups.RemovePath(filepath.Join(unifiedMount, root))
	if !m.V2() {
		t.Fatal("the child does not see a v2 host")
	}
	path := m.PodPath("Burstable", "v2")
	if err := m.EnsurePod(path, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsurePod(path, nil); err != nil {
		t.Fatalf("second EnsurePod: %v", err)
	}
	cmd := startInCgroup(t, m, path+"/ctr")
	if err := m.RemovePod(path); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("process in the pod ended with %v, want SIGKILL", err)
	}
	if _, err := os.Stat(filepath.Join(unifiedMount, path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod cgroup left: %v", err)
	}
	if err := m.RemovePod(path); err != nil {
		t.Fatalf("second RemovePod: %v", err)
	}
	if _, err := m.Stats(path); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stats of a removed pod = %v, want ErrNotFound", err)
	}
}
