package image

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry is go-containerregistry's registry on 127.0.0.1 with hooks to
// count requests, demand credentials and break responses.
type testRegistry struct {
	srv      *httptest.Server
	host     string
	blobGets atomic.Int64
	requests atomic.Int64

	mu      sync.Mutex
	user    string // when set, requests need this user with password "secret"
	corrupt string // blob digest whose content is altered in flight
	failAll bool   // every request gets 500
	// stall, when set, is a blob digest served only half: the handler then
	// closes stalled and waits for its client to go away.
	stall   string
	stalled chan struct{}
}

func newRegistry(t testing.TB) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		r.mu.Lock()
		user, corrupt, failAll, stall := r.user, r.corrupt, r.failAll, r.stall
		r.mu.Unlock()
		if failAll {
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"registry is broken on purpose"}]}`, http.StatusInternalServerError)
			return
		}
		if user != "" {
			if u, p, ok := req.BasicAuth(); !ok || u != user || p != "secret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"test registry wants credentials"}]}`)
				return
			}
		}
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			r.blobGets.Add(1)
			if stall != "" && strings.HasSuffix(req.URL.Path, stall) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				body := rec.Body.Bytes()
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				w.WriteHeader(rec.Code)
				w.Write(body[:len(body)/2])
				w.(http.Flusher).Flush()
				close(r.stalled)
				<-req.Context().Done()
				return
			}
			if corrupt != "" && strings.HasSuffix(req.URL.Path, corrupt) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				body := rec.Body.Bytes()
				if len(body) > 40 {
					body[len(body)/2] ^= 0xff
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) push(t testing.TB, ref string, img v1.Image) name.Reference {
	t.Helper()
	n, err := name.ParseReference(r.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(n, img); err != nil {
		t.Fatalf("push %s: %v", n, err)
	}
	return n
}

func (r *testRegistry) pushIndex(t testing.TB, ref string, idx v1.ImageIndex) {
	t.Helper()
	n, err := name.ParseReference(r.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(n, idx); err != nil {
		t.Fatalf("push %s: %v", n, err)
	}
}

// buildImage makes an image of tar layers, OCI media types when oci, each
// layer compressed with comp, for arch.
func buildImage(t testing.TB, oci bool, comp compression.Compression, arch string, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	if oci {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	for _, data := range layers {
		data := data
		opts := []tarball.LayerOption{tarball.WithCompression(comp)}
		if oci && comp == compression.ZStd {
			opts = append(opts, tarball.WithMediaType(types.OCILayerZStd))
		} else if oci {
			opts = append(opts, tarball.WithMediaType(types.OCILayer))
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.User = "1000"
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeHosts writes certs.d/<registry>/hosts.toml.
func writeHosts(t testing.TB, certsDir, registry, content string) {
	t.Helper()
	dir := filepath.Join(certsDir, registry)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
