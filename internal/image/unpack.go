package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// opaqueXattr marks a directory that hides the same directory in lower layers.
	opaqueXattr = "trusted.overlay.opaque"
	paxXattr    = "SCHILY.xattr."
)

// unpackLayer unpacks the uncompressed layer tarball r as layer diffID unless
// the store has it already. It unpacks into work, checks the stream's digest,
// syncs and renames into place, so a layer under layers/ is always complete.
// verify, when not nil, runs before that commit and can still refuse it.
func (s *Store) unpackLayer(ctx context.Context, r io.Reader, diffID string, work *workDir, verify func() error) error {
	final := s.layerPath(diffID)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	tmp := filepath.Join(work.path, "layer-"+strings.TrimPrefix(diffID, "sha256:"))
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	h := sha256.New()
	tee := io.TeeReader(&spaceGuard{r: r, dir: s.dir, reserve: s.reserve}, h)
	if err := applyTar(ctx, tee, tmp); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	// The digest covers the tar's trailing padding too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID {
		return fmt.Errorf("unpack layer %s: %w: content is %s", diffID, ErrDigestMismatch, got)
	}
	if verify != nil {
		if err := verify(); err != nil {
			return fmt.Errorf("unpack layer %s: %w", diffID, err)
		}
	}
	if err := syncFS(tmp); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process committed the same layer first; theirs is as good.
		if _, serr := os.Stat(final); serr == nil {
			return nil
		}
		return fmt.Errorf("unpack layer %s: commit: %w", diffID, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	return nil
}

// syncFS flushes the whole filesystem holding path: one call instead of an
// fsync per unpacked file.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

type dirTimes struct {
	path         string
	atime, mtime time.Time
}

// applyTar writes the entries of a layer tarball under root in the form
// overlayfs reads lower layers in: whiteouts become 0:0 character devices and
// opaque directories get trusted.overlay.opaque=y. Entry names are confined to
// root: ".." and absolute names are taken relative to root, and symlinks
// (including symlinked parents) are resolved inside root, never outside.
func applyTar(ctx context.Context, r io.Reader, root string) error {
	tr := tar.NewReader(r)
	var dirs []dirTimes
	buf := make([]byte, 128<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := applyEntry(root, hdr, tr, buf, &dirs); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating their children changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := setTimes(d.path, d.atime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

func applyEntry(root string, hdr *tar.Header, r io.Reader, buf []byte, dirs *[]dirTimes) error {
	name := filepath.Clean("/" + hdr.Name)
	if name == "/" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the layer root must be a directory", ErrUnsafeLayer)
		}
		return applyMeta(root, hdr, dirs)
	}
	dir, base := filepath.Split(name)
	parent, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return fmt.Errorf("resolve parent: %w", err)
	}
	if err := mkdirAll(root, parent); err != nil {
		return err
	}

	if base == whiteoutOpaque {
		if err := unix.Lsetxattr(parent, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque: %w", parent, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		hidden := strings.TrimPrefix(base, whiteoutPrefix)
		if hidden == "" || hidden == "." || hidden == ".." {
			return fmt.Errorf("%w: whiteout of %q", ErrUnsafeLayer, hidden)
		}
		p := filepath.Join(parent, hidden)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("whiteout: %w", err)
		}
		if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("whiteout %s: %w", p, err)
		}
		return nil
	}

	path := filepath.Join(parent, base)
	// A new entry replaces an old one, except that directories merge.
	if fi, err := os.Lstat(path); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("replace: %w", err)
		}
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(path, 0o700); err != nil && !os.IsExist(err) {
			return fmt.Errorf("mkdir: %w", err)
		}
	case tar.TypeReg:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		_, err = io.CopyBuffer(f, io.LimitReader(r, hdr.Size), buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
	case tar.TypeSymlink:
		// The target is kept verbatim: it is resolved in the container's root.
		if err := os.Symlink(hdr.Linkname, path); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		target, err := linkTarget(root, hdr.Linkname)
		if err != nil {
			return err
		}
		if err := os.Link(target, path); err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		// The inode's metadata came with the entry that created it.
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		if err := unix.Mknod(path, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("%w: unsupported entry type %q", ErrUnsafeLayer, hdr.Typeflag)
	}
	return applyMeta(path, hdr, dirs)
}

// linkTarget resolves a hard link's target inside root without following a
// symlink in its last component (a hard link to a symlink links the symlink).
func linkTarget(root, linkname string) (string, error) {
	name := filepath.Clean("/" + linkname)
	if name == "/" {
		return "", fmt.Errorf("%w: hard link to the layer root", ErrUnsafeLayer)
	}
	dir, base := filepath.Split(name)
	parent, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return "", fmt.Errorf("resolve hard link target: %w", err)
	}
	target := filepath.Join(parent, base)
	fi, err := os.Lstat(target)
	if err != nil {
		return "", fmt.Errorf("%w: hard link target %q is not in this layer", ErrUnsafeLayer, linkname)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("%w: hard link to directory %q", ErrUnsafeLayer, linkname)
	}
	return target, nil
}

// mkdirAll creates the missing directories of path, which SecureJoin
// resolved inside root: existing components are real directories there.
func mkdirAll(root, path string) error {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%w: %s is outside the layer", ErrUnsafeLayer, path)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("create parent: %w", err)
	}
	return nil
}

func applyMeta(path string, hdr *tar.Header, dirs *[]dirTimes) error {
	if err := os.Lchown(path, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, paxXattr) {
			continue
		}
		if err := unix.Lsetxattr(path, strings.TrimPrefix(k, paxXattr), []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", strings.TrimPrefix(k, paxXattr), err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears set-user-ID and set-group-ID bits.
		if err := unix.Chmod(path, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	if hdr.Typeflag == tar.TypeDir {
		*dirs = append(*dirs, dirTimes{path: path, atime: atime, mtime: hdr.ModTime})
		return nil
	}
	return setTimes(path, atime, hdr.ModTime)
}

func setTimes(path string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", path, err)
	}
	return nil
}

// spaceGuard stops an unpack that would leave less than reserve bytes free
// on the store's filesystem: a decompression bomb (a small blob that expands
// without end) fails instead of filling the disk.
type spaceGuard struct {
	r         io.Reader
	dir       string
	reserve   uint64
	sinceStat int64
	checked   bool
}

// spaceCheckEvery is how many bytes pass between two statfs calls.
const spaceCheckEvery = 64 << 20

func (g *spaceGuard) Read(p []byte) (int, error) {
	if !g.checked || g.sinceStat >= spaceCheckEvery {
		g.checked, g.sinceStat = true, 0
		var st unix.Statfs_t
		if err := unix.Statfs(g.dir, &st); err != nil {
			return 0, fmt.Errorf("statfs %s: %w", g.dir, err)
		}
		if free := st.Bavail * uint64(st.Bsize); free < g.reserve {
			return 0, fmt.Errorf("%w: %s left on the image store's filesystem, %s must stay free", ErrNoSpace, HumanSize(int64(free)), HumanSize(int64(g.reserve)))
		}
	}
	n, err := g.r.Read(p)
	g.sinceStat += int64(n)
	return n, err
}
