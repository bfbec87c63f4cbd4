package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/testimage"
)

// TestPulledBusyboxRunsFromOverlay pulls the team's busybox test image with
// two more layers (a file, then whiteouts) and runs its shell chrooted in the
// overlay snapshot of its layers.
func TestPulledBusyboxRunsFromOverlay(t *testing.T) {
	testimage.RequireRoot(t)
	host := testimage.Registry(t)
	img, err := testimage.Image(
		testimage.WithFiles(map[string]string{"/etc/motd": "hello from layer 2\n", "/etc/gone": "x"}),
		testimage.WithWhiteouts("/etc/gone", "/bin/ls"),
	)
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.Push(t, host, "team/busybox:layers", img)

	top := t.TempDir()
	certs := filepath.Join(top, "certs.d")
	writeHosts(t, certs, host, fmt.Sprintf("server = %q\n", "http://"+host))
	s, err := Open(filepath.Join(top, "images"), WithRegistries(certs))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(got)
	if err != nil || len(dirs) != 3 {
		t.Fatalf("LayerDirs = %v, %v", dirs, err)
	}
	snaps := snapshot.New(filepath.Join(top, "snapshots"))
	rootfs := filepath.Join(top, "rootfs")
	if err := snaps.Prepare("c", dirs, rootfs); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := snaps.Remove("c", rootfs); err != nil {
			t.Error(err)
		}
	}()
	cmd := exec.Command("/bin/sh", "-c", "cat /etc/motd; test -e /etc/gone && echo gone-visible; test -e /bin/ls && echo ls-visible; echo written > /tmp/x; cat /tmp/x")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("shell in the snapshot: %v\n%s", err, out)
	}
	if want := "hello from layer 2\nwritten\n"; string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

// TestRemoveKeepsMountedLayers removes an image whose layers a rootfs still
// stacks: the record goes, the layers stay until unmounted and pruned.
func TestRemoveKeepsMountedLayers(t *testing.T) {
	s := openStore(t)
	img, err := s.Import(context.Background(), bytes.NewReader(busyboxTar(t)), "busybox")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(img)
	if err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	snaps := snapshot.New(filepath.Join(top, "snapshots"))
	rootfs := filepath.Join(top, "rootfs")
	if err := snaps.Prepare("c", dirs, rootfs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Remove("c", rootfs) })
	if err := s.Remove("busybox"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "bin/busybox")); err != nil {
		t.Errorf("running rootfs lost its layer: %v", err)
	}
	if _, err := s.Prune(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Errorf("prune deleted a mounted layer: %v", err)
	}
	if err := snaps.Remove("c", rootfs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Errorf("unmounted orphan layer survived prune: %v", err)
	}
}
