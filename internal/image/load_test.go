package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/peapod-dev/peapod/internal/testimage"
)

func TestLoadDockerArchive(t *testing.T) {
	testimage.RequireRoot(t)
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	l1, l2 := twoLayers(t)
	img := buildImage(t, false, compression.GZip, runtime.GOARCH, l1, l2)
	tag, _ := name.NewTag("example.com/app:v1")
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Load(context.Background(), bytes.NewReader(gzipped(t, buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	if len(imgs) != 1 || imgs[0].ID != cfgName.String() || !equal(imgs[0].RepoTags, []string{"example.com/app:v1"}) {
		t.Fatalf("loaded %+v", imgs)
	}
	dirs, err := s.LayerDirs(imgs[0])
	if err != nil || len(dirs) != 2 {
		t.Fatalf("LayerDirs = %v, %v", dirs, err)
	}
	if _, err := os.Stat(filepath.Join(dirs[1], "var/new")); err != nil {
		t.Error(err)
	}
}

func TestLoadOCILayout(t *testing.T) {
	testimage.RequireRoot(t)
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, true, compression.ZStd, runtime.GOARCH, mkTar(t, entry{name: "f", body: "oci"}))
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: "example.com/oci:v2"})); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Load(context.Background(), bytes.NewReader(tarDir(t, dir)))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || !equal(imgs[0].RepoTags, []string{"example.com/oci:v2"}) {
		t.Fatalf("loaded %+v", imgs)
	}
	dirs, _ := s.LayerDirs(imgs[0])
	if data, err := os.ReadFile(filepath.Join(dirs[0], "f")); err != nil || string(data) != "oci" {
		t.Errorf("f = %q, %v", data, err)
	}
	// The blobs are kept as the layout had them (zstd), with their manifest.
	d, _ := img.Digest()
	if _, err := os.Stat(s.blobPath(d.String())); err != nil {
		t.Errorf("manifest blob: %v", err)
	}

	if _, err := s.Load(context.Background(), bytes.NewReader(mkTar(t, entry{name: "other", body: "x"}))); !errors.Is(err, ErrUnknownArchive) {
		t.Errorf("Load(random tar) = %v", err)
	}
}

// tarDir writes dir as a tarball of plain files and directories.
func tarDir(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = rel
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPrune(t *testing.T) {
	testimage.RequireRoot(t)
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keep, err := s.Import(ctx, bytes.NewReader(mkTar(t, entry{name: "k", body: "1"})), "keep")
	if err != nil {
		t.Fatal(err)
	}
	drop, err := s.Import(ctx, bytes.NewReader(mkTar(t, entry{name: "d", body: "1"})), "drop")
	if err != nil {
		t.Fatal(err)
	}
	// Leftovers no image references: a stray blob and layer.
	if err := os.WriteFile(s.blobPath(digestOf([]byte("stray"))), []byte("stray"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.layerPath(digestOf([]byte("stray"))), 0o755); err != nil {
		t.Fatal(err)
	}
	removed, err := s.Prune(func(img *Image) bool { return img.ID == keep.ID })
	if err != nil {
		t.Fatal(err)
	}
	if !equal(removed, []string{drop.ID}) {
		t.Errorf("removed %v, want %s", removed, drop.ID)
	}
	if _, err := s.Resolve("keep"); err != nil {
		t.Error(err)
	}
	if n := countEntries(t, filepath.Join(s.Dir(), "layers/sha256")); n != 1 {
		t.Errorf("%d layers left, want 1", n)
	}
	// keep's layer (uncompressed, so its own blob), config and manifest.
	if n := countEntries(t, filepath.Join(s.Dir(), "blobs/sha256")); n != 3 {
		t.Errorf("%d blobs left, want 3", n)
	}
}

// TestSameImageFromOtherBlobs stores one image (one config) first from a
// registry (gzip blobs), then from a docker archive (uncompressed blobs): the
// blobs only the first copy used are deleted, the layers stay.
func TestSameImageFromOtherBlobs(t *testing.T) {
	reg := newRegistry(t)
	s := pullStore(t, reg)
	l1, l2 := twoLayers(t)
	img := buildImage(t, false, compression.GZip, runtime.GOARCH, l1, l2)
	reg.push(t, "test/same:1", img)
	pulled, err := s.Pull(context.Background(), reg.host+"/test/same:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("example.com/same:1")
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	loaded, err := s.Load(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].ID != pulled.ID || len(loaded[0].RepoTags) != 2 {
		t.Fatalf("loaded %+v", loaded)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if _, err := os.Stat(s.blobPath(d.String())); !os.IsNotExist(err) {
			t.Errorf("gzip blob %s kept: %v", d, err)
		}
		diffID, _ := l.DiffID()
		if _, err := os.Stat(s.blobPath(diffID.String())); err != nil {
			t.Errorf("uncompressed blob %s: %v", diffID, err)
		}
	}
	// Two layer blobs, config, manifest.
	if n := countEntries(t, filepath.Join(s.Dir(), "blobs/sha256")); n != 4 {
		t.Errorf("%d blobs, want 4", n)
	}
	if _, err := s.LayerDirs(loaded[0]); err != nil {
		t.Error(err)
	}
}
