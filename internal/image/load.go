package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/peapod-dev/peapod/internal/log"
)

// ErrUnknownArchive means a tarball is neither a docker archive nor an OCI layout.
var ErrUnknownArchive = errors.New("neither a docker-archive nor an OCI-layout tarball")

const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// Load stores every image of a docker-archive (`docker save`) or OCI-layout
// (`skopeo copy … oci-archive:`, `podman save --format oci-archive`) tarball,
// plain, gzip or zstd compressed.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]*Image, error) {
	work, err := s.newWorkDir()
	if err != nil {
		return nil, err
	}
	defer work.done()
	tr, err := decompress(r)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer tr.Close()
	archive := filepath.Join(work.path, "archive.tar")
	f, err := os.Create(archive)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	_, err = io.Copy(f, tr)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("load: spool archive: %w", err)
	}
	names, err := tarNames(archive)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var imgs []*Image
	switch {
	case names["index.json"]:
		imgs, err = s.loadOCI(ctx, archive, filepath.Join(work.path, "layout"))
	case names["manifest.json"]:
		imgs, err = s.loadDocker(ctx, archive)
	default:
		err = ErrUnknownArchive
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	for _, img := range imgs {
		log.FromContext(ctx).Info("loaded image", "id", img.ID, "tags", img.RepoTags)
	}
	return imgs, nil
}

func tarNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		names[strings.TrimPrefix(filepath.Clean("/"+hdr.Name), "/")] = true
	}
}

func (s *Store) loadDocker(ctx context.Context, archive string) ([]*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(archive) }
	mf, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("read docker archive manifest: %w", err)
	}
	var out []*Image
	for _, d := range mf {
		var tag *name.Tag
		if len(d.RepoTags) > 0 {
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalidName, err)
			}
			tag = &t
		} else if len(mf) > 1 {
			return nil, fmt.Errorf("docker archive holds %d images and one has no tag to tell it apart", len(mf))
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("read docker archive image: %w", err)
		}
		rawConfig, err := img.RawConfigFile()
		if err != nil {
			return nil, fmt.Errorf("read docker archive config: %w", err)
		}
		layers, err := img.Layers()
		if err != nil {
			return nil, fmt.Errorf("read docker archive layers: %w", err)
		}
		// Archive layers are stored uncompressed: the blob is the diff itself.
		src := &source{rawConfig: rawConfig}
		for _, l := range layers {
			src.layers = append(src.layers, layerSource{size: -1, open: l.Uncompressed})
		}
		for _, t := range d.RepoTags {
			n, err := Normalize(t)
			if err != nil {
				return nil, err
			}
			src.tags = append(src.tags, n)
		}
		saved, err := s.save(ctx, src)
		if err != nil {
			return nil, err
		}
		out = append(out, saved)
	}
	return out, nil
}

func (s *Store) loadOCI(ctx context.Context, archive, dir string) ([]*Image, error) {
	if err := extractPlain(archive, dir); err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read OCI layout index: %w", err)
	}
	var out []*Image
	for _, d := range im.Manifests {
		img, err := platformImage(idx, d)
		if err != nil {
			return nil, err
		}
		src, err := imageSource(img)
		if err != nil {
			return nil, err
		}
		if n := layoutName(d.Annotations); n != "" {
			src.tags = []string{n}
		}
		saved, err := s.save(ctx, src)
		if err != nil {
			return nil, err
		}
		out = append(out, saved)
	}
	return out, nil
}

// platformImage returns the image d names, resolving an index to this platform.
func platformImage(idx v1.ImageIndex, d v1.Descriptor) (v1.Image, error) {
	if !d.MediaType.IsIndex() {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("read image %s: %w", d.Digest, err)
		}
		return img, nil
	}
	child, err := idx.ImageIndex(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", d.Digest, err)
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", d.Digest, err)
	}
	want := Platform()
	for _, c := range cm.Manifests {
		if c.Platform != nil && c.Platform.Satisfies(want) {
			return platformImage(child, c)
		}
	}
	return nil, fmt.Errorf("index %s has no image for %s", d.Digest, want)
}

// layoutName is the image name an OCI layout gives a manifest: containerd's
// full name, or a ref.name that is a reference rather than a bare tag.
func layoutName(ann map[string]string) string {
	for _, n := range []string{ann[annotationContainerdName], ann[annotationRefName]} {
		if strings.ContainsAny(n, ":/@") {
			if norm, err := Normalize(n); err == nil {
				return norm
			}
		}
	}
	return ""
}

// extractPlain unpacks an OCI layout's directories and regular files into
// dir; links and special files have no place in a layout and are refused.
func extractPlain(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		p, err := securejoin.SecureJoin(dir, hdr.Name)
		if err != nil {
			return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
			}
		default:
			return fmt.Errorf("%w: OCI layout entry %q has type %q", ErrUnsafeLayer, hdr.Name, hdr.Typeflag)
		}
	}
}
