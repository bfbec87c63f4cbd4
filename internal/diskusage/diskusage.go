// Package diskusage measures what a directory tree takes on disk, as du
// and containerd's fs.DiskUsage count it: allocated blocks, each inode once
// however many hard links it has, on the tree's own file system only.
package diskusage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Usage is allocated bytes and inodes.
type Usage struct {
	Bytes, Inodes uint64
}

// Of measures the tree at path without following symlinks. A missing path
// takes nothing; entries removed while it walks are skipped. On an error it
// returns what it counted so far.
func Of(path string) (Usage, error) {
	var u Usage
	root, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return u, fmt.Errorf("disk usage of %s: %w", path, err)
	}
	dev := root.Sys().(*syscall.Stat_t).Dev
	seen := map[uint64]bool{}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		var info fs.FileInfo
		if err == nil {
			info, err = d.Info()
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Dev != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		u.Inodes++
		u.Bytes += uint64(st.Blocks) * 512
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("disk usage of %s: %w", path, err)
	}
	return u, nil
}
