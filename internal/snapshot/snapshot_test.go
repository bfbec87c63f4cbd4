package snapshot_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"

	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/testimage"
)

func TestPrepareRemove(t *testing.T) {
	testimage.RequireRoot(t)
	top := t.TempDir()
	bottom, upperLayer := filepath.Join(top, "l0"), filepath.Join(top, "l1")
	for _, f := range []struct{ dir, name, body string }{
		{bottom, "shadowed", "bottom"}, {bottom, "only-bottom", "b"}, {upperLayer, "shadowed", "top"},
	} {
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.dir, f.name), []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := snapshot.New(filepath.Join(top, "snapshots"))
	target := filepath.Join(top, "rootfs")
	if err := s.Prepare("c1", []string{bottom, upperLayer}, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove("c1", target) })
	if data, err := os.ReadFile(filepath.Join(target, "shadowed")); err != nil || string(data) != "top" {
		t.Errorf("shadowed = %q, %v; the last lower must be on top", data, err)
	}
	if _, err := os.Stat(filepath.Join(target, "only-bottom")); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(top, "snapshots/c1/upper/new")); err != nil {
		t.Errorf("write did not land in the upper dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(upperLayer, "new")); !os.IsNotExist(err) {
		t.Errorf("write reached a layer: %v", err)
	}
	// Prepare again (a daemon restart) leaves the mount as it is.
	if err := s.Prepare("c1", []string{bottom, upperLayer}, target); err != nil {
		t.Fatal(err)
	}

	// A process inside keeps the mount busy: Remove still succeeds (detach).
	busy, err := os.Open(filepath.Join(target, "new"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for i := 0; i < 2; i++ {
		if err := s.Remove("c1", target); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if m, err := mountinfo.Mounted(target); err != nil || m {
		t.Errorf("target still mounted: %v %v", m, err)
	}
	if _, err := os.Stat(filepath.Join(top, "snapshots/c1")); !os.IsNotExist(err) {
		t.Errorf("snapshot dir left: %v", err)
	}
	assertNoMountsUnder(t, top)
}

func TestPrepareBadInput(t *testing.T) {
	testimage.RequireRoot(t)
	top := t.TempDir()
	s := snapshot.New(filepath.Join(top, "snapshots"))
	for _, key := range []string{"", "..", "a/b"} {
		if err := s.Prepare(key, []string{top}, filepath.Join(top, "t")); !errors.Is(err, snapshot.ErrInvalidKey) {
			t.Errorf("Prepare(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if err := s.Prepare("k", nil, filepath.Join(top, "t")); !errors.Is(err, snapshot.ErrNoLayers) {
		t.Errorf("Prepare without layers = %v", err)
	}
	// A failed mount leaves no snapshot dir behind.
	if err := s.Prepare("k", []string{filepath.Join(top, "missing")}, filepath.Join(top, "t")); err == nil {
		t.Fatal("mount with a missing lower succeeded")
	}
	if _, err := os.Stat(filepath.Join(top, "snapshots/k")); !os.IsNotExist(err) {
		t.Errorf("failed Prepare left its dir: %v", err)
	}
	assertNoMountsUnder(t, top)
}

func assertNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if strings.HasPrefix(m.Mountpoint, dir) {
			t.Errorf("mount left: %s", m.Mountpoint)
		}
	}
}

// TestPrepareManyLayers stacks more layers than one page of mount options holds.
func TestPrepareManyLayers(t *testing.T) {
	testimage.RequireRoot(t)
	top := t.TempDir()
	var lowers []string
	for i := 0; i < 120; i++ {
		d := filepath.Join(top, "layers", fmt.Sprintf("%064d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "top"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append(lowers, d)
	}
	s := snapshot.New(filepath.Join(top, "snapshots"))
	target := filepath.Join(top, "rootfs")
	if err := s.Prepare("many", lowers, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Remove("many", target) })
	if data, err := os.ReadFile(filepath.Join(target, "top")); err != nil || string(data) != "119" {
		t.Errorf("top = %q, %v; the last layer must win", data, err)
	}
	for _, f := range []string{"f0", "f119"} {
		if _, err := os.Stat(filepath.Join(target, f)); err != nil {
			t.Error(err)
		}
	}
	if err := s.Remove("many", target); err != nil {
		t.Fatal(err)
	}
	assertNoMountsUnder(t, top)
}
