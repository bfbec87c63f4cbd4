package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/testimage"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	testimage.RequireRoot(t)
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImportAndResolve(t *testing.T) {
	s := openStore(t)
	img, err := s.Import(context.Background(), bytes.NewReader(busyboxTar(t)), "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docker.io/library/busybox:latest"}; !equal(img.RepoTags, want) {
		t.Errorf("RepoTags = %v, want %v", img.RepoTags, want)
	}
	if img.Config.Architecture != runtime.GOARCH || img.Config.OS != "linux" {
		t.Errorf("platform = %s/%s", img.Config.OS, img.Config.Architecture)
	}
	if len(img.DiffIDs) != 1 || len(img.Config.RootFS.DiffIDs) != 1 || img.Config.RootFS.DiffIDs[0].String() != img.DiffIDs[0] {
		t.Errorf("diff ids: %v vs config %v", img.DiffIDs, img.Config.RootFS.DiffIDs)
	}
	if len(img.Config.History) != 1 || img.Size <= 0 {
		t.Errorf("history %v, size %d", img.Config.History, img.Size)
	}
	hex := strings.TrimPrefix(img.ID, "sha256:")
	for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox:latest", "index.docker.io/library/busybox", img.ID, hex[:12], "sha256:" + hex[:5]} {
		got, err := s.Resolve(ref)
		if err != nil {
			t.Errorf("Resolve(%q): %v", ref, err)
			continue
		}
		if got.ID != img.ID {
			t.Errorf("Resolve(%q) = %s, want %s", ref, got.ID, img.ID)
		}
	}
	for _, ref := range []string{"busybox:1.0", "other", "fffffffffffff", ""} {
		if _, err := s.Resolve(ref); err == nil {
			t.Errorf("Resolve(%q) found an image", ref)
		}
	}
	if _, err := s.Resolve("other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(other) = %v, want ErrNotFound", err)
	}

	dirs, err := s.LayerDirs(img)
	if err != nil || len(dirs) != 1 {
		t.Fatalf("LayerDirs = %v, %v", dirs, err)
	}
	checkBusyboxLayer(t, dirs[0])

	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ID != img.ID {
		t.Fatalf("List = %v, %v", list, err)
	}
	var out bytes.Buffer
	if err := FormatList(&out, list); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "docker.io/library/busybox   latest   "+hex[:12]+"   ") {
		t.Errorf("FormatList:\n%s", out.String())
	}
}

func checkBusyboxLayer(t *testing.T, dir string) {
	t.Helper()
	st := func(p string) *unix.Stat_t {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &s); err != nil {
			t.Fatalf("lstat %s: %v", p, err)
		}
		return &s
	}
	if s := st("bin/busybox"); s.Mode&0o7777 != 0o755 || s.Mtim.Sec != epoch.Unix() {
		t.Errorf("bin/busybox mode %o mtime %d", s.Mode, s.Mtim.Sec)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}
	if st("bin/ls").Ino != st("bin/busybox").Ino {
		t.Error("bin/ls is not a hard link of bin/busybox")
	}
	if s := st("tmp"); s.Mode&0o7777 != 0o1777 || s.Mtim.Sec != epoch.Unix() {
		t.Errorf("tmp mode %o mtime %d", s.Mode&0o7777, s.Mtim.Sec)
	}
	if s := st("home/user/file"); s.Uid != 1000 || s.Gid != 1000 || s.Mode&0o7777 != 0o4755 {
		t.Errorf("home/user/file uid %d gid %d mode %o", s.Uid, s.Gid, s.Mode&0o7777)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "home/user/file"), "user.peapod", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("xattr user.peapod = %q, %v", buf[:n], err)
	}
	if s := st("dev/null"); s.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(s.Rdev) != 1 || unix.Minor(s.Rdev) != 3 {
		t.Errorf("dev/null mode %o rdev %d", s.Mode, s.Rdev)
	}
}

func TestSharedLayerUnpackedOnceAndKeptUntilLastImage(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	layer := busyboxTar(t)
	a, err := s.Import(ctx, bytes.NewReader(layer), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(a)
	if err != nil {
		t.Fatal(err)
	}
	var before unix.Stat_t
	if err := unix.Stat(dirs[0], &before); err != nil {
		t.Fatal(err)
	}
	b, err := s.Import(ctx, bytes.NewReader(layer), "b:1")
	if err != nil {
		t.Fatal(err)
	}
	if a.DiffIDs[0] != b.DiffIDs[0] {
		t.Fatalf("same tarball, different layers: %s %s", a.DiffIDs[0], b.DiffIDs[0])
	}
	var after unix.Stat_t
	if err := unix.Stat(dirs[0], &after); err != nil {
		t.Fatal(err)
	}
	if before.Ino != after.Ino {
		t.Error("the second import unpacked the shared layer again")
	}
	if n := countEntries(t, filepath.Join(s.Dir(), "layers/sha256")); n != 1 {
		t.Errorf("%d layer dirs, want 1", n)
	}

	if err := s.Remove("a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("a:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed image still resolves: %v", err)
	}
	if err := s.Remove("a:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	bdirs, err := s.LayerDirs(b)
	if err != nil {
		t.Fatalf("shared layer went with the first image: %v", err)
	}
	checkBusyboxLayer(t, bdirs[0])
	if err := s.Remove(b.ID); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"layers/sha256", "blobs/sha256", "tmp"} {
		if n := countEntries(t, filepath.Join(s.Dir(), d)); n != 0 {
			t.Errorf("%s has %d entries after removing every image", d, n)
		}
	}
}

func TestImportRetagsAndCompressed(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	first, err := s.Import(ctx, bytes.NewReader(mkTar(t, entry{name: "a", body: "1"})), "x")
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Import(ctx, bytes.NewReader(gzipped(t, mkTar(t, entry{name: "a", body: "2"}))), "x")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Resolve("x")
	if err != nil || got.ID != second.ID {
		t.Fatalf("Resolve(x) = %v, %v; want the second import", got, err)
	}
	old, err := s.Resolve(first.ID)
	if err != nil || len(old.RepoTags) != 0 {
		t.Fatalf("first image: %v, %v; want it kept untagged", old, err)
	}
	dirs, _ := s.LayerDirs(second)
	if data, err := os.ReadFile(filepath.Join(dirs[0], "a")); err != nil || string(data) != "2" {
		t.Errorf("gzip layer: a = %q, %v", data, err)
	}
	if _, err := s.Import(ctx, bytes.NewReader(nil), "Bad Name"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Import with a bad name = %v, want ErrInvalidName", err)
	}
}

func TestOpenRemovesAbandonedWork(t *testing.T) {
	testimage.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A crash half-way through an unpack leaves its work dir, unlocked.
	w, err := s.newWorkDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.path, "partial"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := s.newWorkDir()
	if err != nil {
		t.Fatal(err)
	}
	defer busy.done()
	w.lock.Close()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.path); !os.IsNotExist(err) {
		t.Errorf("abandoned work dir survived Open: %v", err)
	}
	if _, err := os.Stat(busy.path); err != nil {
		t.Errorf("Open removed a work dir in use: %v", err)
	}
}

func countEntries(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestUnpackKeepsReserveFree(t *testing.T) {
	s := openStore(t)
	s.reserve = 1 << 62 // more than any disk: the first check refuses
	_, err := s.Import(context.Background(), bytes.NewReader(mkTar(t, entry{name: "f", body: "1"})), "x")
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Import = %v, want ErrNoSpace", err)
	}
	if n := countEntries(t, filepath.Join(s.Dir(), "layers/sha256")); n != 0 {
		t.Errorf("%d layers after a refused import", n)
	}
}
