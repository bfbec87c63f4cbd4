package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

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

// tempDir returns a directory for pins and undoes the self bind mount New
// makes of it.
func tempDir(t testing.TB) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		unix.Unmount(dir, unix.MNT_DETACH)
		if mounted(t, dir) {
			t.Errorf("%s still mounted", dir)
		}
	})
	return dir
}

func mounted(t testing.TB, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestNewAndRemove(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	host := inode(t, "/proc/self/ns/net")

	p, err := New(dir, "pod1")
	if err != nil {
		t.Fatal(err)
	}
	if inode(t, "/proc/self/ns/net") != host {
		t.Fatal("New moved the process's main thread into the new netns")
	}
	if p != filepath.Join(dir, "pod1") {
		t.Fatalf("path = %s", p)
	}
	if !mounted(t, p) {
		t.Fatalf("%s is not a mount point", p)
	}
	if inode(t, p) == inode(t, "/proc/self/ns/net") || inode(t, p) == inode(t, "/proc/thread-self/ns/net") {
		t.Fatal("the new netns is the host's")
	}

	var names []string
	err = Do(p, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "lo" {
		t.Fatalf("interfaces in new netns = %v, want [lo]", names)
	}

	// A second namespace is a different one.
	p2, err := New(dir, "pod2")
	if err != nil {
		t.Fatal(err)
	}
	if inode(t, p2) == inode(t, p) {
		t.Fatal("two namespaces share an inode")
	}
	if _, err := New(dir, "pod2"); err == nil {
		t.Fatal("New over an existing pin succeeded")
	}

	for _, path := range []string{p, p2} {
		if err := Remove(path); err != nil {
			t.Fatal(err)
		}
		if mounted(t, path) {
			t.Fatalf("%s still mounted after Remove", path)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still exists: %v", path, err)
		}
		if err := Remove(path); err != nil {
			t.Fatalf("second Remove: %v", err)
		}
	}
}

func TestNewInvalidName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b"} {
		if _, err := New(t.TempDir(), name); err == nil {
			t.Errorf("New(%q) succeeded", name)
		}
	}
}

func TestDoRefusesOtherFiles(t *testing.T) {
	requireRoot(t)
	f := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Do(f, func() error { return nil })
	if !errors.Is(err, ErrNotNetns) {
		t.Fatalf("Do on a plain file = %v, want ErrNotNetns", err)
	}
}

func TestDoLeavesCallerNamespace(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	p, err := New(dir, "pod")
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(p)
	host := inode(t, "/proc/thread-self/ns/net")
	var inside uint64
	if err := Do(p, func() error {
		inside = inode(t, "/proc/thread-self/ns/net")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside != inode(t, p) {
		t.Fatal("Do did not run fn inside the namespace")
	}
	if inode(t, "/proc/thread-self/ns/net") != host {
		t.Fatal("caller's thread changed namespace")
	}
}

func TestPin(t *testing.T) {
	requireRoot(t)
	dir := tempDir(t)
	// A process in a network namespace of its own pins it; the pin keeps
	// it after the process is gone.
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	want := inode(t, src)
	p, err := Pin(dir, "pinned", src)
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !mounted(t, p) || inode(t, p) != want {
		t.Fatalf("%s does not hold the process's netns", p)
	}
	if err := Do(p, func() error { return nil }); err != nil {
		t.Fatalf("enter the pinned netns after its process is gone: %v", err)
	}
	if _, err := Pin(dir, "pinned", src); err == nil {
		t.Fatal("Pin over an existing pin succeeded")
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists: %v", p, err)
	}
}

func TestReleaseDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "netns")
	path, err := New(dir, "held")
	if err != nil {
		t.Fatal(err)
	}
	if released, err := ReleaseDir(dir); err != nil || released {
		t.Fatalf("ReleaseDir with a pin: released=%v err=%v, want it kept", released, err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if released, err := ReleaseDir(dir); err != nil || !released {
		t.Fatalf("ReleaseDir of an empty dir: released=%v err=%v", released, err)
	}
	if mounted(t, dir) {
		t.Errorf("%s is still a mount point", dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists: %v", dir, err)
	}
	if released, err := ReleaseDir(dir); err != nil || !released {
		t.Errorf("ReleaseDir twice: released=%v err=%v", released, err)
	}
}
