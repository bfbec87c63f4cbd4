package diskusage

import (
	"os"
	"path/filepath"
	"testing"
)

func writeBytes(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOf(t *testing.T) {
	dir := t.TempDir()
	writeBytes(t, filepath.Join(dir, "a"), 1<<20)
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside")
	writeBytes(t, outside, 4<<20)
	if err := os.Symlink(outside, filepath.Join(dir, "symlink")); err != nil {
		t.Fatal(err)
	}
	// A sparse file uses the blocks written, not its length.
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	u, err := Of(dir)
	used := u.Bytes
	if err != nil {
		t.Fatal(err)
	}
	if used < 1<<20 || used >= 2<<20 {
		t.Errorf("usage %d bytes, want 1 MiB plus metadata (hard link once, symlink not followed, sparse file empty)", used)
	}
	if u, err := Of(filepath.Join(dir, "missing")); err != nil || u.Bytes != 0 {
		t.Errorf("missing path: %d, %v", u.Bytes, err)
	}
}
