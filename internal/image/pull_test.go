package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/image/hosts"
	"github.com/peapod-dev/peapod/internal/testimage"
)

// pullStore opens a store whose certs.d makes reg a plain-HTTP registry.
func pullStore(t *testing.T, reg *testRegistry, authFiles ...string) *Store {
	t.Helper()
	testimage.RequireRoot(t)
	top := t.TempDir()
	certs := filepath.Join(top, "certs.d")
	writeHosts(t, certs, reg.host, fmt.Sprintf("server = %q\n", "http://"+reg.host))
	s, err := Open(filepath.Join(top, "images"), WithRegistries(certs, authFiles...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func twoLayers(t *testing.T) ([]byte, []byte) {
	return mkTar(t,
			entry{name: "etc/", typ: tar.TypeDir},
			entry{name: "etc/gone", body: "x"},
			entry{name: "etc/kept", body: "x"},
			entry{name: "var/", typ: tar.TypeDir},
			entry{name: "var/old", body: "x"},
		), mkTar(t,
			entry{name: "etc/", typ: tar.TypeDir},
			entry{name: "etc/.wh.gone"},
			entry{name: "var/", typ: tar.TypeDir},
			entry{name: "var/.wh..wh..opq"},
			entry{name: "var/new", body: "y"},
		)
}

func TestPullMultiLayerGzipAndZstd(t *testing.T) {
	reg := newRegistry(t)
	s := pullStore(t, reg)
	l1, l2 := twoLayers(t)
	for _, tc := range []struct {
		name string
		oci  bool
		comp compression.Compression
	}{{"docker-gzip", false, compression.GZip}, {"oci-zstd", true, compression.ZStd}} {
		t.Run(tc.name, func(t *testing.T) {
			img := buildImage(t, tc.oci, tc.comp, runtime.GOARCH, l1, l2)
			cfg, _ := img.ConfigFile()
			cfg = cfg.DeepCopy()
			cfg.Config.Env = []string{"VARIANT=" + tc.name}
			img, _ = mutate.ConfigFile(img, cfg)
			reg.push(t, "test/multi:"+tc.name, img)
			var progressed int
			got, err := s.Pull(context.Background(), reg.host+"/test/multi:"+tc.name, PullOptions{Progress: func(Progress) { progressed++ }})
			if err != nil {
				t.Fatal(err)
			}
			cfgName, _ := img.ConfigName()
			manifestDigest, _ := img.Digest()
			if got.ID != cfgName.String() {
				t.Errorf("ID %s, want config digest %s", got.ID, cfgName)
			}
			if want := reg.host + "/test/multi:" + tc.name; !equal(got.RepoTags, []string{want}) {
				t.Errorf("RepoTags %v, want %s", got.RepoTags, want)
			}
			if want := reg.host + "/test/multi@" + manifestDigest.String(); !equal(got.RepoDigests, []string{want}) {
				t.Errorf("RepoDigests %v, want %s", got.RepoDigests, want)
			}
			if progressed == 0 {
				t.Error("no progress reported")
			}
			dirs, err := s.LayerDirs(got)
			if err != nil || len(dirs) != 2 {
				t.Fatalf("LayerDirs = %v, %v", dirs, err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dirs[1], "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
				t.Errorf("whiteout etc/gone: %v", err)
			}
			buf := make([]byte, 4)
			if n, err := unix.Lgetxattr(filepath.Join(dirs[1], "var"), opaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
				t.Errorf("opaque var: %q %v", buf[:n], err)
			}
		})
	}
	// The same layers in both images are stored once.
	if n := countEntries(t, filepath.Join(s.Dir(), "layers/sha256")); n != 2 {
		t.Errorf("%d layer dirs, want 2", n)
	}
}

func TestPullByDigestAndIndex(t *testing.T) {
	reg := newRegistry(t)
	s := pullStore(t, reg)
	ours := buildImage(t, true, compression.GZip, runtime.GOARCH, mkTar(t, entry{name: "arch", body: runtime.GOARCH}))
	other := buildImage(t, true, compression.GZip, "s390x", mkTar(t, entry{name: "arch", body: "s390x"}))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		mutate.IndexAddendum{Add: ours, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	reg.pushIndex(t, "test/multiarch:1", idx)
	got, err := s.Pull(context.Background(), reg.host+"/test/multiarch:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.Architecture != runtime.GOARCH {
		t.Errorf("pulled %s, want this machine's %s", got.Config.Architecture, runtime.GOARCH)
	}
	idxDigest, _ := idx.Digest()
	if want := reg.host + "/test/multiarch@" + idxDigest.String(); !equal(got.RepoDigests, []string{want}) {
		t.Errorf("RepoDigests %v, want the index digest %s", got.RepoDigests, want)
	}

	d, _ := ours.Digest()
	reg.push(t, "test/bydigest:tag", ours)
	byDigest, err := s.Pull(context.Background(), reg.host+"/test/bydigest@"+d.String(), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The same image came through the index before: the names add up.
	if byDigest.ID != got.ID || !contains(byDigest.RepoDigests, reg.host+"/test/bydigest@"+d.String()) || len(byDigest.RepoTags) != 1 {
		t.Errorf("digest pull: tags %v digests %v", byDigest.RepoTags, byDigest.RepoDigests)
	}
	if r, err := s.Resolve(reg.host + "/test/bydigest@" + d.String()); err != nil || r.ID != byDigest.ID {
		t.Errorf("Resolve by digest: %v %v", r, err)
	}
}

func TestPullPlainHTTPNeedsConfiguration(t *testing.T) {
	testimage.RequireRoot(t)
	reg := newRegistry(t)
	reg.push(t, "test/x:1", buildImage(t, false, compression.GZip, runtime.GOARCH, mkTar(t, entry{name: "f", body: "1"})))
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), reg.host+"/test/x:1", PullOptions{}); !errors.Is(err, hosts.ErrPlainHTTP) {
		t.Fatalf("pull over plain HTTP without configuration = %v, want ErrPlainHTTP", err)
	}
}

func TestPullMirrors(t *testing.T) {
	testimage.RequireRoot(t)
	good, broken := newRegistry(t), newRegistry(t)
	broken.mu.Lock()
	broken.failAll = true
	broken.mu.Unlock()
	good.push(t, "library/busybox:latest", buildImage(t, false, compression.GZip, runtime.GOARCH, mkTar(t, entry{name: "f", body: "1"})))
	top := t.TempDir()
	certs := filepath.Join(top, "certs.d")
	// Air-gapped: docker.io is served by mirrors only; the broken one first.
	writeHosts(t, certs, "docker.io", fmt.Sprintf(`server = "http://%[2]s"

[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]

[host."http://%[2]s"]
  capabilities = ["pull", "resolve"]
`, broken.host, good.host))
	s, err := Open(filepath.Join(top, "images"), WithRegistries(certs))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Pull(context.Background(), "busybox", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !equal(img.RepoTags, []string{"docker.io/library/busybox:latest"}) || !strings.HasPrefix(img.RepoDigests[0], "docker.io/library/busybox@sha256:") {
		t.Errorf("tags %v digests %v", img.RepoTags, img.RepoDigests)
	}
	if broken.requests.Load() == 0 {
		t.Error("the first mirror was not tried")
	}

	// Without fallback, an image no mirror has fails with the mirrors' errors.
	_, err = s.Pull(context.Background(), "docker.io/library/absent:1", PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "registry is broken on purpose") || !strings.Contains(err.Error(), good.host) {
		t.Errorf("pull of an absent image: %v", err)
	}
}

func TestPullCredentials(t *testing.T) {
	reg := newRegistry(t)
	reg.push(t, "private/x:1", buildImage(t, false, compression.GZip, runtime.GOARCH, mkTar(t, entry{name: "f", body: "1"})))
	reg.mu.Lock()
	reg.user = "alice"
	reg.mu.Unlock()
	authFile := filepath.Join(t.TempDir(), "config.json")
	s := pullStore(t, reg, authFile)
	ref := reg.host + "/private/x:1"
	_, err := s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous pull = %v, want the registry's UNAUTHORIZED", err)
	}
	if _, err := s.Pull(context.Background(), ref, PullOptions{Auth: &authn.AuthConfig{Username: "alice", Password: "secret"}}); err != nil {
		t.Fatalf("pull with CRI credentials: %v", err)
	}
	if err := s.Remove(ref); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"auths":{"http://%s/v2/":{"auth":%q}}}`, reg.host, base64.StdEncoding.EncodeToString([]byte("alice:secret")))
	if err := os.WriteFile(authFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), ref, PullOptions{}); err != nil {
		t.Fatalf("pull with config.json credentials: %v", err)
	}
}

func TestPullCorruptBlobIsRefused(t *testing.T) {
	reg := newRegistry(t)
	s := pullStore(t, reg)
	img := buildImage(t, false, compression.GZip, runtime.GOARCH, busyboxTar(t))
	reg.push(t, "test/corrupt:1", img)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	reg.mu.Lock()
	reg.corrupt = d.Hex
	reg.mu.Unlock()
	if _, err := s.Pull(context.Background(), reg.host+"/test/corrupt:1", PullOptions{}); err == nil {
		t.Fatal("corrupt blob accepted")
	}
	for _, dir := range []string{"layers/sha256", "blobs/sha256", "tmp"} {
		if n := countEntries(t, filepath.Join(s.Dir(), dir)); n != 0 {
			t.Errorf("%s has %d entries after a refused pull", dir, n)
		}
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Errorf("images after a refused pull: %v", imgs)
	}
	// Once the registry serves the right bytes the pull succeeds.
	reg.mu.Lock()
	reg.corrupt = ""
	reg.mu.Unlock()
	if _, err := s.Pull(context.Background(), reg.host+"/test/corrupt:1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPullMaliciousLayerIsRefused(t *testing.T) {
	reg := newRegistry(t)
	s := pullStore(t, reg)
	evil := buildImage(t, true, compression.GZip, runtime.GOARCH,
		mkTar(t, entry{name: "x", typ: tar.TypeLink, link: "/etc/passwd"}))
	reg.push(t, "test/evil:1", evil)
	if _, err := s.Pull(context.Background(), reg.host+"/test/evil:1", PullOptions{}); !errors.Is(err, ErrUnsafeLayer) {
		t.Fatalf("pull = %v, want ErrUnsafeLayer", err)
	}
}

func TestConcurrentPullsDownloadOnce(t *testing.T) {
	reg := newRegistry(t)
	s := pullStore(t, reg)
	l1, l2 := twoLayers(t)
	reg.push(t, "test/once:1", buildImage(t, false, compression.GZip, runtime.GOARCH, l1, l2))
	before := reg.blobGets.Load()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Pull(context.Background(), reg.host+"/test/once:1", PullOptions{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A config and two layers.
	if n := reg.blobGets.Load() - before; n != 3 {
		t.Errorf("%d blob downloads for 8 concurrent pulls, want 3", n)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestFetchLayerVerifiesDigestAndSize(t *testing.T) {
	testimage.RequireRoot(t)
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	data := mkTar(t, entry{name: "f", body: "1"})
	diffID := digestOf(data)
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	for name, l := range map[string]layerSource{
		"wrong digest": {diffID: diffID, digest: digestOf([]byte("other")), size: int64(len(data)), open: open},
		"too long":     {diffID: diffID, digest: diffID, size: int64(len(data)) - 1, open: open},
		"too short":    {diffID: diffID, digest: diffID, size: int64(len(data)) + 1, open: open},
		"wrong diffID": {diffID: digestOf([]byte("other")), digest: diffID, size: int64(len(data)), open: open},
	} {
		if _, err := s.fetchLayer(context.Background(), l, nil); !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("%s: %v, want ErrDigestMismatch", name, err)
		}
		for _, dir := range []string{"layers/sha256", "blobs/sha256"} {
			if n := countEntries(t, filepath.Join(s.Dir(), dir)); n != 0 {
				t.Errorf("%s: %s has %d entries", name, dir, n)
			}
		}
	}
}
