package podmanager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// The kubelet's permission masks for fsGroup (pkg/volume/volume_linux.go):
// every file gets group read and write (read only on read-only volumes),
// every directory group search and setgid, so that new files inherit the group.
const (
	fsGroupRWMask   = os.FileMode(0o660)
	fsGroupROMask   = os.FileMode(0o440)
	fsGroupExecMask = os.FileMode(0o110)
)

// podFSGroup is the pod's securityContext.fsGroup, nil when unset.
func podFSGroup(pod *corev1.Pod) *int64 {
	if pod.Spec.SecurityContext == nil {
		return nil
	}
	return pod.Spec.SecurityContext.FSGroup
}

// setVolumeOwnership is the kubelet's SetVolumeOwnership: the volume at dir,
// depth first, gets group fsGroup (owner kept) and the group bits of rwMask or
// roMask added to its mode, directories also setgid and group search. Symlinks
// are left alone (chmod would follow them and change the target's mode).
// Errors on single files are logged, as the kubelet does; only a walk that
// cannot proceed fails. fsGroupChangePolicy does not apply: the kubelet
// honours it only for volume types peapod does not have (emptyDir,
// configMap, secret, downwardAPI and projected pass no policy).
func setVolumeOwnership(ctx context.Context, dir string, fsGroup *int64, readOnly bool) error {
	if fsGroup == nil {
		return nil
	}
	log := plog.FromContext(ctx)
	return walkDeep(dir, func(path string, info fs.FileInfo) {
		if err := changeFilePermission(path, *fsGroup, readOnly, info); err != nil {
			log.Warn("setting volume ownership", "path", path, "fsGroup", *fsGroup, "err", err)
		}
	})
}

func changeFilePermission(path string, fsGroup int64, readOnly bool, info fs.FileInfo) error {
	if info.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	var errs []error
	if err := os.Lchown(path, int(st.Uid), int(fsGroup)); err != nil {
		errs = append(errs, err)
	}
	mask := fsGroupRWMask
	if readOnly {
		mask = fsGroupROMask
	}
	if info.IsDir() {
		mask |= os.ModeSetgid | fsGroupExecMask
	}
	// chown clears setuid/setgid bits: chmod after it, from the mode read before.
	if err := os.Chmod(path, info.Mode()|mask); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// walkDeep calls fn for every file below root, children before their
// directory (walkDeep of the kubelet: a directory's mode changes only after
// its content was reached), without following symlinks.
func walkDeep(root string, fn func(path string, info fs.FileInfo)) error {
	info, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("set volume ownership of %s: %w", root, err)
	}
	return walkDeepFrom(root, info, fn)
}

func walkDeepFrom(path string, info fs.FileInfo, fn func(string, fs.FileInfo)) error {
	if info.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("set volume ownership: %w", err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("set volume ownership: read %s: %w", path, err)
		}
		for _, name := range names {
			p := filepath.Join(path, name)
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				return fmt.Errorf("set volume ownership: %w", err)
			}
			if err := walkDeepFrom(p, fi, fn); err != nil {
				return err
			}
		}
	}
	fn(path, info)
	return nil
}
