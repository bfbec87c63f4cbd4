package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// killChildEnv makes the test binary, run as a child, pull and be killed.
const killChildEnv = "PEAPOD_IMAGE_TEST_KILL_CHILD"

// TestKillDuringPull kills a process (SIGKILL) while it unpacks a layer, then
// checks that nothing partial is visible and that a new pull succeeds.
func TestKillDuringPull(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		s, err := Open(os.Getenv("STORE"), WithRegistries(os.Getenv("CERTS")))
		if err == nil {
			_, err = s.Pull(context.Background(), os.Getenv("REF"), PullOptions{})
		}
		// Reaching here means the parent did not kill us.
		fmt.Fprintln(os.Stderr, "child pull returned:", err)
		os.Exit(3)
	}
	testimage.RequireRoot(t)
	reg := newRegistry(t)
	img := buildImage(t, false, compression.GZip, runtime.GOARCH, busyboxTar(t))
	reg.push(t, "test/kill:1", img)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	reg.mu.Lock()
	reg.stall, reg.stalled = d.Hex, make(chan struct{})
	reg.mu.Unlock()

	top := t.TempDir()
	certs := filepath.Join(top, "certs.d")
	writeHosts(t, certs, reg.host, fmt.Sprintf("server = %q\n", "http://"+reg.host))
	dir := filepath.Join(top, "images")
	ref := reg.host + "/test/kill:1"
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringPull$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"=1", "STORE="+dir, "CERTS="+certs, "REF="+ref)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-reg.stalled:
	case err := <-exited:
		t.Fatalf("child exited before the stalled blob: %v", err)
	}
	// Wait until the child is writing the big file of the layer.
	for {
		m, _ := filepath.Glob(filepath.Join(dir, "tmp", "*", "layer-*", "bin", "busybox"))
		if len(m) > 0 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("child exited during the pull: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited

	for _, d := range []string{"layers/sha256", "blobs/sha256"} {
		if n := countEntries(t, filepath.Join(dir, d)); n != 0 {
			t.Errorf("%s has %d entries after the kill", d, n)
		}
	}
	reg.mu.Lock()
	reg.stall = ""
	reg.mu.Unlock()
	s, err := Open(dir, WithRegistries(certs))
	if err != nil {
		t.Fatal(err)
	}
	if n := countEntries(t, filepath.Join(dir, "tmp")); n != 0 {
		t.Errorf("Open left %d entries of the killed pull in tmp", n)
	}
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(got)
	if err != nil {
		t.Fatal(err)
	}
	checkBusyboxLayer(t, dirs[0])
	want, _ := os.Stat("/bin/busybox")
	if fi, err := os.Stat(filepath.Join(dirs[0], "bin/busybox")); err != nil || fi.Size() != want.Size() {
		t.Errorf("bin/busybox after the second pull: %v, %v", fi, err)
	}
}
