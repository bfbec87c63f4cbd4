// Package testimage makes the fixtures other packages' tests share: a busybox
// root filesystem, OCI images built from it (with extra layers on demand), a
// local registry serving them, and checks for test prerequisites.
package testimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"
)

// Busybox is the static busybox the root filesystem is made from (Debian
// package busybox-static).
const Busybox = "/bin/busybox"

// ErrBadEntry reports a layer entry that cannot be written.
var ErrBadEntry = errors.New("bad layer entry")

// ModTime is the modification time of every file in tarballs made here, so
// that the same content always has the same digest.
var ModTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one file system object in a layer.
type Entry struct {
	// Path inside the image; a leading "/" is optional.
	Path string
	// Type is a tar type flag: tar.TypeReg (the default), tar.TypeDir,
	// tar.TypeSymlink or tar.TypeLink.
	Type byte
	// Content of a regular file.
	Content string
	// Target of a symbolic link, or for a hard link the path inside the
	// image of the file it links to.
	Target string
	// Mode is the permission bits; 0 means 0644 for files, 0755 for
	// directories and 0777 for symbolic links.
	Mode     int64
	UID, GID int
}

// Whiteout is the entry that deletes path from the layers below (OCI image
// spec, "Whiteouts").
func Whiteout(p string) Entry {
	dir, base := path.Split(strings.TrimPrefix(p, "/"))
	return Entry{Path: dir + ".wh." + base}
}

// OpaqueWhiteout is the entry that hides everything the layers below hold in dir.
func OpaqueWhiteout(dir string) Entry {
	return Entry{Path: path.Join(strings.TrimPrefix(dir, "/"), ".wh..wh..opq")}
}

// RootfsTar writes a root filesystem tarball made from the static busybox:
// /bin/busybox, a symbolic link for every applet at the path busybox names,
// /etc/passwd and /etc/group (root and nobody), and the usual top-level
// directories. The output is the same for the same busybox binary.
func RootfsTar(w io.Writer) error {
	entries, err := rootfsEntries()
	if err != nil {
		return err
	}
	return writeTar(w, entries)
}

func rootfsEntries() ([]Entry, error) {
	bin, err := os.ReadFile(Busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	entries := []Entry{
		{Path: "bin", Type: tar.TypeDir},
		{Path: "dev", Type: tar.TypeDir},
		{Path: "etc", Type: tar.TypeDir},
		{Path: "home", Type: tar.TypeDir},
		{Path: "proc", Type: tar.TypeDir},
		{Path: "root", Type: tar.TypeDir, Mode: 0o700},
		{Path: "sys", Type: tar.TypeDir},
		{Path: "tmp", Type: tar.TypeDir, Mode: 0o1777},
		{Path: "var", Type: tar.TypeDir},
		{Path: "bin/busybox", Content: string(bin), Mode: 0o755},
		{Path: "etc/passwd", Content: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{Path: "etc/group", Content: "root:x:0:\nnogroup:x:65534:\n"},
	}
	for _, applet := range strings.Fields(string(out)) {
		applet = strings.TrimPrefix(applet, "/")
		if applet == "bin/busybox" {
			continue
		}
		entries = append(entries, Entry{Path: applet, Type: tar.TypeSymlink, Target: "/bin/busybox"})
	}
	return entries, nil
}

// writeTar writes entries as a tar stream, sorted by path and with the
// directories they need, so that the same entries always give the same bytes.
func writeTar(w io.Writer, entries []Entry) error {
	byPath := map[string]Entry{}
	for _, e := range entries {
		p := path.Clean(strings.TrimPrefix(e.Path, "/"))
		if p == "." || p == ".." || strings.HasPrefix(p, "../") {
			return fmt.Errorf("%w: path %q is not inside the image", ErrBadEntry, e.Path)
		}
		e.Path = p
		byPath[p] = e
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = Entry{Path: dir, Type: tar.TypeDir}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	// Compare component by component, so that a directory precedes its contents.
	sort.Slice(paths, func(i, j int) bool {
		return strings.ReplaceAll(paths[i], "/", "\x00") < strings.ReplaceAll(paths[j], "/", "\x00")
	})

	tw := tar.NewWriter(w)
	for _, p := range paths {
		if err := writeEntry(tw, byPath[p]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish tarball: %w", err)
	}
	return nil
}

func writeEntry(tw *tar.Writer, e Entry) error {
	h := &tar.Header{
		Name:    e.Path,
		Mode:    e.Mode,
		Uid:     e.UID,
		Gid:     e.GID,
		ModTime: ModTime,
	}
	switch e.Type {
	case 0, tar.TypeReg:
		h.Typeflag = tar.TypeReg
		h.Size = int64(len(e.Content))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
	case tar.TypeDir:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
		if h.Mode == 0 {
			h.Mode = 0o755
		}
	case tar.TypeSymlink, tar.TypeLink:
		if e.Target == "" {
			return fmt.Errorf("%w: link %q has no target", ErrBadEntry, e.Path)
		}
		h.Typeflag = e.Type
		h.Linkname = e.Target
		if h.Mode == 0 {
			h.Mode = 0o777
		}
	default:
		return fmt.Errorf("%w: %q has unsupported type %q", ErrBadEntry, e.Path, e.Type)
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write tar header for %q: %w", e.Path, err)
	}
	if h.Typeflag == tar.TypeReg {
		if _, err := io.WriteString(tw, e.Content); err != nil {
			return fmt.Errorf("write %q: %w", e.Path, err)
		}
	}
	return nil
}
