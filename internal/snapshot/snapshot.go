// Package snapshot gives each container a writable root: an overlayfs mount
// of the image's unpacked layers with a private upper directory.
package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

var (
	// ErrInvalidKey means a snapshot key is not a single path component.
	ErrInvalidKey = errors.New("invalid snapshot key")
	// ErrNoLayers means Prepare was given no lower directories.
	ErrNoLayers = errors.New("snapshot needs at least one layer")
)

// Snapshotter keeps snapshots under its directory: DIR/<key>/{upper,work}.
type Snapshotter struct {
	dir string
}

// New returns a Snapshotter keeping its state in dir, usually ROOT/snapshots.
func New(dir string) *Snapshotter { return &Snapshotter{dir: dir} }

func (s *Snapshotter) path(key string) (string, error) {
	if key == "" || key == "." || key == ".." || strings.ContainsRune(key, '/') {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return filepath.Join(s.dir, key), nil
}

// Prepare creates snapshot key and mounts it on target: overlayfs with lowers
// (bottom to top, as image.Store.LayerDirs returns them) under the snapshot's
// own upper directory. When target already is a mount point, Prepare assumes
// it is this snapshot, mounted before a daemon restart, and leaves it.
func (s *Snapshotter) Prepare(key string, lowers []string, target string) (retErr error) {
	dir, err := s.path(key)
	if err != nil {
		return err
	}
	if len(lowers) == 0 {
		return fmt.Errorf("prepare snapshot %s: %w", key, ErrNoLayers)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("prepare snapshot %s: %w", key, err)
	}
	if mounted, err := mountinfo.Mounted(target); err != nil {
		return fmt.Errorf("prepare snapshot %s: %w", key, err)
	} else if mounted {
		return nil
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("prepare snapshot %s: %w", key, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("prepare snapshot %s: %w", key, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(dir)
		}
	}()
	// The root of the merged tree takes the upper directory's mode.
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("prepare snapshot %s: %w", key, err)
		}
	}
	top := make([]string, len(lowers))
	for i, l := range lowers {
		if strings.ContainsAny(l, ":,") {
			return fmt.Errorf("prepare snapshot %s: layer path %q contains ':' or ','", key, l)
		}
		top[len(lowers)-1-i] = l
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(top, ":"), upper, work)
	if len(opts) < os.Getpagesize() {
		if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
			return fmt.Errorf("prepare snapshot %s: mount overlay on %s (%s): %w", key, target, opts, err)
		}
		return nil
	}
	// mount(2) takes one page of options; many layers need the new mount
	// API, which takes them one by one ("lowerdir+", Linux 6.8).
	if err := mountLayerByLayer(top, upper, work, target); err != nil {
		return fmt.Errorf("prepare snapshot %s: mount overlay of %d layers on %s: %w", key, len(lowers), target, err)
	}
	return nil
}

func mountLayerByLayer(top []string, upper, work, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fd)
	for _, l := range top {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			return fmt.Errorf("add layer %s (needs Linux 6.8): %w", l, err)
		}
	}
	if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
		return fmt.Errorf("upperdir: %w", err)
	}
	if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
		return fmt.Errorf("workdir: %w", err)
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("create overlay: %w", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move mount to %s: %w", target, err)
	}
	return nil
}

// Remove unmounts target and deletes snapshot key. It is idempotent: a
// target that is not mounted and a key that does not exist are fine.
func (s *Snapshotter) Remove(key, target string) error {
	dir, err := s.path(key)
	if err != nil {
		return err
	}
	if err := unmountAll(target); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	return nil
}

// unmountAll unmounts every mount stacked on target, detaching a busy one
// (it goes away once its last user does).
func unmountAll(target string) error {
	for {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			// Not (or no longer) a mount point.
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
