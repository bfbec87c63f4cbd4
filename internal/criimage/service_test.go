package criimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/peapod-dev/peapod/internal/image"
	"github.com/peapod-dev/peapod/internal/testimage"
)

func rootfs(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "file", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImageService(t *testing.T) {
	testimage.RequireRoot(t)
	ctx := context.Background()
	store, err := image.Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := New(store, clocktesting.NewFakePassiveClock(now))
	a, err := store.Import(ctx, bytes.NewReader(rootfs(t, "a")), "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Import(ctx, bytes.NewReader(rootfs(t, "b")), "example.com/other:v1"); err != nil {
		t.Fatal(err)
	}

	list, err := svc.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 2 {
		t.Fatalf("ListImages = %v, %v", list, err)
	}
	list, err = svc.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "busybox:latest"}}})
	if err != nil || len(list.Images) != 1 || list.Images[0].Id != a.ID {
		t.Fatalf("ListImages(filter busybox) = %v, %v", list, err)
	}
	got := list.Images[0]
	if got.Size == 0 || got.Spec.GetImage() != a.ID || got.Pinned || len(got.RepoTags) != 1 || got.RepoTags[0] != "docker.io/library/busybox:latest" {
		t.Errorf("image = %v", got)
	}

	st, err := svc.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "docker.io/library/busybox"}, Verbose: true})
	if err != nil || st.Image.GetId() != a.ID {
		t.Fatalf("ImageStatus = %v, %v", st, err)
	}
	var info verboseInfo
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.ImageSpec.RootFS.DiffIDs[0].String() != a.DiffIDs[0] {
		t.Errorf("verbose info %q: %v", st.Info["info"], err)
	}
	st, err = svc.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "missing:1"}})
	if err != nil || st.Image != nil {
		t.Errorf("ImageStatus(missing) = %v, %v; want nil image, no error", st, err)
	}

	fs, err := svc.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 {
		t.Fatalf("ImageFsInfo = %v, %v", fs, err)
	}
	u := fs.ImageFilesystems[0]
	if u.Timestamp != now.UnixNano() || u.UsedBytes.GetValue() == 0 || u.InodesUsed.GetValue() < 5 || u.FsId.GetMountpoint() != store.Dir() {
		t.Errorf("usage = %v", u)
	}

	for i := 0; i < 2; i++ {
		if _, err := svc.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); err != nil {
			t.Fatalf("RemoveImage #%d: %v", i+1, err)
		}
	}
	list, err = svc.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 || list.Images[0].RepoTags[0] != "example.com/other:v1" {
		t.Fatalf("after remove: %v, %v", list, err)
	}
	if _, err := svc.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{}}); err == nil {
		t.Error("ImageStatus without an image succeeded")
	}
}

func TestToCRIUser(t *testing.T) {
	for user, want := range map[string]struct {
		uid  int64
		name string
	}{
		"":           {-1, ""},
		"1000":       {1000, ""},
		"0:0":        {0, ""},
		"nobody":     {-1, "nobody"},
		"www:daemon": {-1, "www"},
	} {
		img := &image.Image{ID: "sha256:x", Config: &v1.ConfigFile{Config: v1.Config{User: user}}}
		got := toCRI(img)
		uid := int64(-1)
		if got.Uid != nil {
			uid = got.Uid.Value
		}
		if uid != want.uid || got.Username != want.name {
			t.Errorf("User %q: uid %d username %q, want %d %q", user, uid, got.Username, want.uid, want.name)
		}
	}
}
