package image

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// TestPullHTTPSWithConfiguredCA pulls from an HTTPS registry whose
// certificate only a hosts.toml `ca` (or skip_verify) makes trusted.
func TestPullHTTPSWithConfiguredCA(t *testing.T) {
	testimage.RequireRoot(t)
	srv := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	ref, err := name.ParseReference(host + "/tls/x:1")
	if err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, false, compression.GZip, runtime.GOARCH, mkTar(t, entry{name: "f", body: "tls"}))
	if err := remote.Write(ref, img, remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	caFile := filepath.Join(top, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hosts string
		ok          bool
	}{
		{"untrusted", "", false},
		{"ca", fmt.Sprintf("ca = %q\n", caFile), true},
		{"skip_verify", "skip_verify = true\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certs := filepath.Join(dir, "certs.d")
			writeHosts(t, certs, host, tc.hosts)
			s, err := Open(filepath.Join(dir, "images"), WithRegistries(certs))
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Pull(context.Background(), host+"/tls/x:1", PullOptions{})
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "certificate")) {
				t.Fatalf("pull from an untrusted registry = %v, want a certificate error", err)
			}
		})
	}
}
