package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Progress reports how much of one layer blob has been read.
type Progress struct {
	Digest      string
	Done, Total int64 // Total is -1 when unknown
}

// layerSource is one layer to bring into the store.
type layerSource struct {
	diffID string // from the (verified) config
	digest string // the blob as fetched; equal to diffID for uncompressed blobs
	size   int64  // declared blob size, -1 when unknown
	open   func() (io.ReadCloser, error)
}

// source is an image to bring into the store from a registry or an archive.
type source struct {
	rawManifest []byte // nil: write an OCI manifest for uncompressed layers
	rawConfig   []byte
	layers      []layerSource
	tags        []string
	digests     []string
	progress    func(Progress)
}

// maxParallelLayers bounds concurrent layer downloads per image, as
// containerd's max_concurrent_downloads does.
const maxParallelLayers = 3

// save verifies and stores src's config, layers and manifest, then records
// the image under its names.
func (s *Store) save(ctx context.Context, src *source) (_ *Image, retErr error) {
	cfgDigest := digestOf(src.rawConfig)
	cfg, err := v1.ParseConfigFile(bytes.NewReader(src.rawConfig))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(src.layers) {
		return nil, fmt.Errorf("%w: config lists %d layers, manifest %d", ErrDigestMismatch, len(cfg.RootFS.DiffIDs), len(src.layers))
	}
	for i := range src.layers {
		src.layers[i].diffID = cfg.RootFS.DiffIDs[i].String()
		if src.layers[i].digest == "" {
			src.layers[i].digest = src.layers[i].diffID
		}
	}
	var held []string
	for _, l := range src.layers {
		held = append(held, l.digest, "layer:"+l.diffID)
	}
	held = append(held, cfgDigest)
	release := s.hold(held...)
	defer release()

	work, err := s.newWorkDir()
	if err != nil {
		return nil, err
	}
	defer work.done()

	progress := src.progress
	if progress != nil {
		// Layers arrive in parallel; the callback sees one report at a time.
		var mu sync.Mutex
		progress = func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			src.progress(p)
		}
	}
	sizes := make([]int64, len(src.layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxParallelLayers)
	for i, l := range src.layers {
		g.Go(func() error {
			// Concurrent pulls of images sharing this layer fetch it once.
			v, err, _ := s.layers.Do(l.digest+" "+l.diffID, func() (any, error) {
				return s.fetchLayer(gctx, l, progress)
			})
			if err != nil {
				return err
			}
			sizes[i] = v.(int64)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	rawManifest := src.rawManifest
	if rawManifest == nil {
		mf := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(src.rawConfig)), Digest: mustHash(cfgDigest)},
		}
		for i, l := range src.layers {
			mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: sizes[i], Digest: mustHash(l.digest)})
		}
		if rawManifest, err = json.Marshal(mf); err != nil {
			return nil, fmt.Errorf("encode manifest: %w", err)
		}
	}
	mfDigest := digestOf(rawManifest)
	defer s.hold(mfDigest)()
	var written []string
	defer func() {
		if retErr != nil {
			for _, d := range written {
				os.Remove(s.blobPath(d))
			}
		}
	}()
	for _, b := range []struct {
		digest string
		data   []byte
	}{{cfgDigest, src.rawConfig}, {mfDigest, rawManifest}} {
		created, err := s.putBlob(b.data, b.digest, work)
		if err != nil {
			return nil, err
		}
		if created {
			written = append(written, b.digest)
		}
	}
	rec := &record{
		ID:          cfgDigest,
		RepoTags:    src.tags,
		RepoDigests: src.digests,
		Manifest:    mfDigest,
		Size:        int64(len(rawManifest) + len(src.rawConfig)),
		Created:     time.Now().UTC(),
	}
	for i, l := range src.layers {
		rec.Layers = append(rec.Layers, layerDesc{Digest: l.digest, DiffID: l.diffID})
		rec.Size += sizes[i]
	}
	if err := s.commit(rec); err != nil {
		return nil, err
	}
	return s.Resolve(cfgDigest)
}

// fetchLayer reads one layer blob once: into the blob store and, decompressed,
// into an unpacked layer. The blob's digest and declared size and the layer's
// diffID are all checked before either is committed. It returns the blob size.
func (s *Store) fetchLayer(ctx context.Context, l layerSource, progress func(Progress)) (int64, error) {
	blobFI, blobErr := os.Stat(s.blobPath(l.digest))
	_, layerErr := os.Stat(s.layerPath(l.diffID))
	if blobErr == nil && layerErr == nil {
		return blobFI.Size(), nil
	}
	work, err := s.newWorkDir()
	if err != nil {
		return 0, err
	}
	defer work.done()
	rc, err := l.open()
	if err != nil {
		return 0, fmt.Errorf("fetch layer %s: %w", l.digest, err)
	}
	defer rc.Close()
	blob, err := os.CreateTemp(work.path, "blob-*")
	if err != nil {
		return 0, fmt.Errorf("fetch layer %s: %w", l.digest, err)
	}
	defer blob.Close()

	var limited io.Reader = rc
	if l.size >= 0 {
		// A blob larger than declared is refused after one extra byte, which
		// also bounds what a decompression bomb can be fed.
		limited = io.LimitReader(rc, l.size+1)
	}
	c := &counter{h: sha256.New(), digest: l.digest, total: l.size, progress: progress}
	tee := io.TeeReader(limited, io.MultiWriter(blob, c))
	verified := false
	verify := func() error {
		if verified {
			return nil
		}
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return fmt.Errorf("read blob %s: %w", l.digest, err)
		}
		if l.size >= 0 && c.n != l.size {
			return fmt.Errorf("%w: blob %s is %d bytes, the manifest says %d", ErrDigestMismatch, l.digest, c.n, l.size)
		}
		if got := "sha256:" + hex.EncodeToString(c.h.Sum(nil)); got != l.digest {
			return fmt.Errorf("%w: blob %s has digest %s", ErrDigestMismatch, l.digest, got)
		}
		verified = true
		return nil
	}
	if layerErr != nil {
		tr, err := decompress(tee)
		if err != nil {
			return 0, fmt.Errorf("fetch layer %s: %w", l.digest, err)
		}
		defer tr.Close()
		if err := s.unpackLayer(ctx, tr, l.diffID, work, verify); err != nil {
			return 0, fmt.Errorf("fetch layer %s: %w", l.digest, err)
		}
	}
	if err := verify(); err != nil {
		return 0, fmt.Errorf("fetch layer %s: %w", l.digest, err)
	}
	if _, err := s.putBlobFile(blob, l.digest); err != nil {
		return 0, err
	}
	return c.n, nil
}

// counter hashes and counts a blob as it streams past, reporting progress.
type counter struct {
	h        hash.Hash
	n        int64
	digest   string
	total    int64
	progress func(Progress)
}

func (c *counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	if c.progress != nil {
		c.progress(Progress{Digest: c.digest, Done: c.n, Total: c.total})
	}
	return len(p), nil
}
