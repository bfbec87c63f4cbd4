package image

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// distributionRegistry runs Debian's docker-registry (distribution) on
// 127.0.0.1 for the test and returns its host.
func distributionRegistry(t *testing.T) string {
	t.Helper()
	bin := testimage.RequireBinary(t, "docker-registry", "docker-registry")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), host)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	out, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return host
			}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("docker-registry exited: %v\n%s", err, log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestPullFromDistribution pulls from the registry most people run.
func TestPullFromDistribution(t *testing.T) {
	testimage.RequireRoot(t)
	host := distributionRegistry(t)
	img, err := testimage.Image(testimage.WithFiles(map[string]string{"/etc/motd": "hi\n"}), testimage.WithUser("1000"))
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.Push(t, host, "team/busybox:dist", img)
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
	d, _ := img.Digest()
	if !equal(got.RepoDigests, []string{host + "/team/busybox@" + d.String()}) || got.Config.Config.User != "1000" {
		t.Errorf("digests %v user %q", got.RepoDigests, got.Config.Config.User)
	}
	dirs, err := s.LayerDirs(got)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dirs[len(dirs)-1], "etc/motd")); err != nil || string(data) != "hi\n" {
		t.Errorf("etc/motd = %q, %v", data, err)
	}
}
