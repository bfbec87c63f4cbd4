package criimage

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/peapod-dev/peapod/internal/image"
	"github.com/peapod-dev/peapod/internal/testimage"
)

func TestPullImage(t *testing.T) {
	testimage.RequireRoot(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/random:1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	certs := filepath.Join(top, "certs.d")
	if err := os.MkdirAll(filepath.Join(certs, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, host, "hosts.toml"), []byte(`server = "http://`+host+`"`), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := image.Open(filepath.Join(top, "images"), image.WithRegistries(certs))
	if err != nil {
		t.Fatal(err)
	}
	svc := New(store, clocktesting.NewFakePassiveClock(time.Now()))
	ctx := context.Background()
	resp, err := svc.PullImage(ctx, &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: host + "/random:1"},
		// Credentials for another registry are not sent here.
		Auth: &runtimeapi.AuthConfig{Username: "u", Password: "p", ServerAddress: "other.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	if resp.ImageRef != cfgName.String() {
		t.Errorf("ImageRef %s, want %s", resp.ImageRef, cfgName)
	}
	st, err := svc.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: host + "/random:1"}})
	if err != nil || st.Image.GetId() != resp.ImageRef || len(st.Image.RepoDigests) != 1 {
		t.Errorf("ImageStatus = %v, %v", st, err)
	}
	_, err = svc.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "Not A Name"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad name: %v", err)
	}
	_, err = svc.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: host + "/absent:1"}})
	if err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") && !strings.Contains(err.Error(), "NAME_UNKNOWN") {
		t.Errorf("absent image: %v (want the registry's error)", err)
	}
}
