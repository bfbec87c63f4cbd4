// Package image keeps images: content-addressed blobs, layers unpacked once
// into directories that overlayfs stacks, and image records in bbolt.
//
// Layout under the store's directory:
//
//	blobs/sha256/<hex>          manifests, configs and layer tarballs
//	layers/sha256/<diffid-hex>/ unpacked layers, read-only once renamed here
//	tmp/                        work in progress; emptied by Open
//	images.db                   image records
package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/image/hosts"
)

var (
	// ErrNotFound means no image matches the reference.
	ErrNotFound = errors.New("image not found")
	// ErrAmbiguous means an ID prefix matches more than one image.
	ErrAmbiguous = errors.New("image reference is ambiguous")
	// ErrInvalidName means a reference is not a valid image name.
	ErrInvalidName = errors.New("invalid image name")
	// ErrUnsafeLayer means a layer tries to write outside its directory or is malformed.
	ErrUnsafeLayer = errors.New("unsafe layer")
	// ErrDigestMismatch means content does not match the digest it was named by.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNoSpace means unpacking stopped to keep the filesystem's reserve free.
	ErrNoSpace = errors.New("image store filesystem too full")
)

// Image is an image the store holds.
type Image struct {
	ID          string // digest of the config blob, "sha256:…"
	RepoTags    []string
	RepoDigests []string
	Size        int64 // manifest, config and layer blobs as stored
	Config      *v1.ConfigFile
	DiffIDs     []string // uncompressed layer digests, bottom to top
}

// record is what images.db keeps per image (the config itself is a blob).
type record struct {
	ID          string      `json:"id"`
	RepoTags    []string    `json:"repoTags,omitempty"`
	RepoDigests []string    `json:"repoDigests,omitempty"`
	Manifest    string      `json:"manifest"`
	Layers      []layerDesc `json:"layers"`
	Size        int64       `json:"size"`
	Created     time.Time   `json:"created"`
}

type layerDesc struct {
	Digest string `json:"digest"` // blob as stored (possibly compressed)
	DiffID string `json:"diffID"`
}

var bucketImages = []byte("images")

// Store is the image store. It is safe for concurrent use, and several
// processes (daemon and CLI) may use the same directory: the database is
// opened per operation under bbolt's file lock.
type Store struct {
	dir       string
	hosts     hosts.Config
	authFiles []string
	reserve   uint64 // bytes an unpack leaves free on the filesystem

	pulls  singleflight.Group // one pull per reference and credentials
	layers singleflight.Group // one download and unpack per layer blob

	mu sync.Mutex
	// inUse counts digests (blobs and diffIDs) that an import or pull in this
	// process is writing but has not yet recorded, so Remove keeps them.
	inUse map[string]int
}

// defaultReserve is the free space unpacking never eats into.
const defaultReserve = 256 << 20

// Option configures a Store.
type Option func(*Store)

// WithRegistries makes pulls use the hosts.toml files under certsDir
// (usually ROOT/certs.d) and the credentials of docker-style config files
// (the first file naming a registry wins).
func WithRegistries(certsDir string, authFiles ...string) Option {
	return func(s *Store) {
		s.hosts = hosts.Config{Dir: certsDir}
		s.authFiles = authFiles
	}
}

// Open opens (creating if needed) the store in dir, usually ROOT/images,
// and removes work a crash left behind.
func Open(dir string, opts ...Option) (*Store, error) {
	// Private to root: overlayfs reaches lower layers with the mounter's
	// credentials, so container users need no access to the store's path.
	for _, d := range []string{"blobs/sha256", "layers/sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create image store: %w", err)
		}
	}
	s := &Store{dir: dir, inUse: map[string]int{}, reserve: defaultReserve}
	for _, o := range opts {
		o(s)
	}
	if err := s.cleanTmp(); err != nil {
		return nil, err
	}
	if err := s.update(func(b *bolt.Bucket) error { return nil }); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// cleanTmp removes work directories whose owner is gone: each holds a flock
// on its directory while it works (another process may be importing now).
func (s *Store) cleanTmp() error {
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return fmt.Errorf("clean image store tmp: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(s.tmpDir(), e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		busy := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
		f.Close()
		if busy {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clean image store tmp: %w", err)
		}
	}
	return nil
}

// workDir is a private directory under tmp/ for one import or pull; it is
// locked until done() removes it, so cleanTmp in another process leaves it be.
type workDir struct {
	path string
	lock *os.File
}

func (s *Store) newWorkDir() (*workDir, error) {
	p, err := os.MkdirTemp(s.tmpDir(), "work-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	f, err := os.Open(p)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(p)
		return nil, fmt.Errorf("lock work dir: %w", err)
	}
	return &workDir{path: p, lock: f}, nil
}

func (w *workDir) done() {
	os.RemoveAll(w.path)
	w.lock.Close()
}

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

func (s *Store) blobPath(digest string) string {
	return filepath.Join(s.dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

func (s *Store) layerPath(diffID string) string {
	return filepath.Join(s.dir, "layers", "sha256", strings.TrimPrefix(diffID, "sha256:"))
}

func (s *Store) openDB(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(filepath.Join(s.dir, "images.db"), 0o600, &bolt.Options{Timeout: 30 * time.Second, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("open images.db: %w", err)
	}
	return db, nil
}

func (s *Store) update(fn func(b *bolt.Bucket) error) error {
	db, err := s.openDB(false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketImages)
		if err != nil {
			return fmt.Errorf("create images bucket: %w", err)
		}
		return fn(b)
	})
}

func (s *Store) records() ([]*record, error) {
	db, err := s.openDB(true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var recs []*record
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r := &record{}
			if err := json.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decode image record %s: %w", k, err)
			}
			recs = append(recs, r)
			return nil
		})
	})
	return recs, err
}

func (s *Store) toImage(r *record) (*Image, error) {
	data, err := os.ReadFile(s.blobPath(r.ID))
	if err != nil {
		return nil, fmt.Errorf("read config of image %s: %w", r.ID, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse config of image %s: %w", r.ID, err)
	}
	img := &Image{
		ID:          r.ID,
		RepoTags:    append([]string(nil), r.RepoTags...),
		RepoDigests: append([]string(nil), r.RepoDigests...),
		Size:        r.Size,
		Config:      cfg,
	}
	for _, l := range r.Layers {
		img.DiffIDs = append(img.DiffIDs, l.DiffID)
	}
	return img, nil
}

// List returns every image, ordered by first tag then ID.
func (s *Store) List() ([]*Image, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	imgs := make([]*Image, 0, len(recs))
	for _, r := range recs {
		img, err := s.toImage(r)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return sortKey(imgs[i]) < sortKey(imgs[j]) })
	return imgs, nil
}

func sortKey(img *Image) string {
	if len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return "~" + img.ID
}

// Resolve finds an image by ID ("sha256:…"), by name (normalized: "busybox"
// means "docker.io/library/busybox:latest"), by repo digest, or by a unique
// prefix of its ID.
func (s *Store) Resolve(ref string) (*Image, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	r, err := resolve(recs, ref)
	if err != nil {
		return nil, err
	}
	return s.toImage(r)
}

func resolve(recs []*record, ref string) (*record, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty reference", ErrInvalidName)
	}
	for _, r := range recs {
		if r.ID == ref {
			return r, nil
		}
	}
	if norm, err := Normalize(ref); err == nil {
		for _, r := range recs {
			for _, n := range append(append([]string(nil), r.RepoTags...), r.RepoDigests...) {
				if n == norm {
					return r, nil
				}
			}
		}
	}
	hex := strings.TrimPrefix(ref, "sha256:")
	if !isHex(hex) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	var found *record
	for _, r := range recs {
		if strings.HasPrefix(strings.TrimPrefix(r.ID, "sha256:"), hex) {
			if found != nil {
				return nil, fmt.Errorf("%w: %s matches %s and %s", ErrAmbiguous, ref, found.ID, r.ID)
			}
			found = r
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return found, nil
}

func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// LayerDirs returns the unpacked layer directories of img, bottom to top.
func (s *Store) LayerDirs(img *Image) ([]string, error) {
	dirs := make([]string, 0, len(img.DiffIDs))
	for _, d := range img.DiffIDs {
		p := s.layerPath(d)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("layer %s of image %s: %w", d, img.ID, err)
		}
		dirs = append(dirs, p)
	}
	return dirs, nil
}

// Remove deletes the image ref names (with all its tags, as the CRI does) and
// every blob and layer no other image uses.
func (s *Store) Remove(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var removed *record
	var rest []*record
	err := s.update(func(b *bolt.Bucket) error {
		recs, err := decodeAll(b)
		if err != nil {
			return err
		}
		removed, err = resolve(recs, ref)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.ID != removed.ID {
				rest = append(rest, r)
			}
		}
		if err := b.Delete([]byte(removed.ID)); err != nil {
			return fmt.Errorf("delete image record %s: %w", removed.ID, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return s.collect(removed, rest)
}

// collect deletes the blobs and layers of removed that neither the images in
// rest nor work in progress use. Called with s.mu held.
func (s *Store) collect(removed *record, rest []*record) error {
	used := map[string]bool{}
	for _, r := range rest {
		for _, d := range r.digests() {
			used[d] = true
		}
		for _, l := range r.Layers {
			used["layer:"+l.DiffID] = true
		}
	}
	var errs []error
	for _, d := range removed.digests() {
		if !used[d] && s.inUse[d] == 0 {
			if err := os.Remove(s.blobPath(d)); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("remove blob %s: %w", d, err))
			}
		}
	}
	mounted, err := mountedLayers()
	if err != nil {
		return err
	}
	for _, l := range removed.Layers {
		if !used["layer:"+l.DiffID] && s.inUse["layer:"+l.DiffID] == 0 && !mounted[s.layerPath(l.DiffID)] {
			if err := s.removeLayerDir(l.DiffID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeLayerDir renames the layer away first so that a crash half-way
// through deleting never leaves a partial layer under its real name.
func (s *Store) removeLayerDir(diffID string) error {
	p := s.layerPath(diffID)
	tmp, err := os.MkdirTemp(s.tmpDir(), "rm-")
	if err != nil {
		return fmt.Errorf("remove layer %s: %w", diffID, err)
	}
	if err := os.Rename(p, filepath.Join(tmp, "layer")); err != nil && !os.IsNotExist(err) {
		os.Remove(tmp)
		return fmt.Errorf("remove layer %s: %w", diffID, err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove layer %s: %w", diffID, err)
	}
	return nil
}

// digests are the blobs a record references.
func (r *record) digests() []string {
	ds := []string{r.ID, r.Manifest}
	for _, l := range r.Layers {
		ds = append(ds, l.Digest)
	}
	return ds
}

func decodeAll(b *bolt.Bucket) ([]*record, error) {
	var recs []*record
	err := b.ForEach(func(k, v []byte) error {
		r := &record{}
		if err := json.Unmarshal(v, r); err != nil {
			return fmt.Errorf("decode image record %s: %w", k, err)
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

// commit records rec under its names, taking each name away from any other
// image that had it (the other image stays, untagged, until removed or pruned).
// When the image was already stored from other blobs (the same config pulled
// with other compression), the blobs only the old record used are deleted.
func (s *Store) commit(rec *record) error {
	var old *record
	var all []*record
	err := s.update(func(b *bolt.Bucket) error {
		recs, err := decodeAll(b)
		if err != nil {
			return err
		}
		names := map[string]bool{}
		for _, n := range append(append([]string(nil), rec.RepoTags...), rec.RepoDigests...) {
			names[n] = true
		}
		for _, r := range recs {
			if r.ID == rec.ID {
				old = r
				rec.RepoTags = union(r.RepoTags, rec.RepoTags)
				rec.RepoDigests = union(r.RepoDigests, rec.RepoDigests)
				if !r.Created.IsZero() {
					rec.Created = r.Created
				}
				continue
			}
			all = append(all, r)
			tags, digests := without(r.RepoTags, names), without(r.RepoDigests, names)
			if len(tags) == len(r.RepoTags) && len(digests) == len(r.RepoDigests) {
				continue
			}
			r.RepoTags, r.RepoDigests = tags, digests
			if err := put(b, r); err != nil {
				return err
			}
		}
		all = append(all, rec)
		return put(b, rec)
	})
	if err != nil || old == nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.collect(old, all)
}

func put(b *bolt.Bucket, r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode image record %s: %w", r.ID, err)
	}
	if err := b.Put([]byte(r.ID), data); err != nil {
		return fmt.Errorf("write image record %s: %w", r.ID, err)
	}
	return nil
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		found := false
		for _, t := range out {
			found = found || s == t
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

func without(list []string, drop map[string]bool) []string {
	var out []string
	for _, s := range list {
		if !drop[s] {
			out = append(out, s)
		}
	}
	return out
}

// hold marks digests as used by work in progress until the returned func runs.
func (s *Store) hold(digests ...string) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range digests {
		s.inUse[d]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, d := range digests {
			if s.inUse[d]--; s.inUse[d] == 0 {
				delete(s.inUse, d)
			}
		}
	}
}
