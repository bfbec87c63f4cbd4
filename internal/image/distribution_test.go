package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// TestPullFromDistribution pulls from the registry most people run.
func TestPullFromDistribution(t *testing.T) {
	testimage.RequireRoot(t)
	host := testimage.Distribution(t)
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
