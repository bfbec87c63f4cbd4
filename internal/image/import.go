package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/peapod-dev/peapod/internal/log"
)

// Import makes a single-layer image named name from a root filesystem
// tarball (plain, gzip or zstd), like `docker import`.
func (s *Store) Import(ctx context.Context, r io.Reader, name string) (*Image, error) {
	ref, err := Normalize(name)
	if err != nil {
		return nil, err
	}
	if _, tag := splitRef(ref); tag == "" {
		return nil, fmt.Errorf("%w: import needs a tag, not a digest: %s", ErrInvalidName, name)
	}
	work, err := s.newWorkDir()
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", ref, err)
	}
	defer work.done()

	tr, err := decompress(r)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", ref, err)
	}
	defer tr.Close()
	// Spool the tarball: its digest names the layer in the config, and is
	// known only at the end.
	spool, err := os.CreateTemp(work.path, "layer-*.tar")
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", ref, err)
	}
	defer spool.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(spool, h), tr)
	if err != nil {
		return nil, fmt.Errorf("import %s: read tarball: %w", ref, err)
	}
	diffID := "sha256:" + hex.EncodeToString(h.Sum(nil))

	now := time.Now().UTC()
	cfg := v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           runtime.GOOS,
		Variant:      cpuVariant(),
		Created:      v1.Time{Time: now},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{mustHash(diffID)}},
		History:      []v1.History{{Created: v1.Time{Time: now}, CreatedBy: "peapod image import", Comment: "Imported from tarball"}},
	}
	rawConfig, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("import %s: encode config: %w", ref, err)
	}
	img, err := s.save(ctx, &source{
		rawConfig: rawConfig,
		layers: []layerSource{{digest: diffID, size: size, open: func() (io.ReadCloser, error) {
			return os.Open(spool.Name())
		}}},
		tags: []string{ref},
	})
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", ref, err)
	}
	log.FromContext(ctx).Info("imported image", "image", ref, "id", img.ID, "size", img.Size)
	return img, nil
}

// decompress returns the tar stream of r, which may be gzip or zstd
// compressed. Closing it frees the decompressor (not r).
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read tarball: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read gzip: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func mustHash(d string) v1.Hash {
	h, err := v1.NewHash(d)
	if err != nil {
		panic(fmt.Sprintf("digest %q computed here is invalid: %v", d, err))
	}
	return h
}

// putBlob stores data as blob digest (verified), unless it is there already.
func (s *Store) putBlob(data []byte, digest string, work *workDir) (created bool, err error) {
	if got := digestOf(data); got != digest {
		return false, fmt.Errorf("store blob %s: %w: content is %s", digest, ErrDigestMismatch, got)
	}
	f, err := os.CreateTemp(work.path, "blob-*")
	if err != nil {
		return false, fmt.Errorf("store blob %s: %w", digest, err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return false, fmt.Errorf("store blob %s: %w", digest, err)
	}
	return s.putBlobFile(f, digest)
}

// putBlobFile moves the file f, whose content the caller verified to be
// digest, into the blob store.
func (s *Store) putBlobFile(f *os.File, digest string) (created bool, err error) {
	final := s.blobPath(digest)
	if _, err := os.Stat(final); err == nil {
		return false, nil
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("store blob %s: %w", digest, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return false, fmt.Errorf("store blob %s: %w", digest, err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return false, fmt.Errorf("store blob %s: %w", digest, err)
	}
	if err := syncDir(s.blobPath("")); err != nil {
		return false, fmt.Errorf("store blob %s: %w", digest, err)
	}
	return true, nil
}
