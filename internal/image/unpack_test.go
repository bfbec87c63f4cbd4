package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/testimage"
)

// TestMaliciousLayers feeds layers that try to write outside their directory.
// Each must be refused or confined to the layer, with nothing written outside.
func TestMaliciousLayers(t *testing.T) {
	testimage.RequireRoot(t)
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		entries func(outside string) []entry
		refused bool
	}{
		{name: "dotdot", entries: func(o string) []entry {
			return []entry{{name: "../../../../../../" + o + "/evil", body: "x"}, {name: "../evil", body: "x"}}
		}},
		{name: "absolute", entries: func(o string) []entry {
			return []entry{{name: o + "/evil", body: "x"}}
		}},
		{name: "symlink to root then write through it", entries: func(o string) []entry {
			return []entry{{name: "root", typ: tar.TypeSymlink, link: "/"}, {name: "root" + o + "/evil", body: "x"}}
		}},
		{name: "symlinked parent", entries: func(o string) []entry {
			return []entry{{name: "dir", typ: tar.TypeSymlink, link: o}, {name: "dir/evil", body: "x"}}
		}},
		{name: "relative symlinked parent", entries: func(o string) []entry {
			return []entry{{name: "a/dir", typ: tar.TypeSymlink, link: "../../../../../../../../" + o}, {name: "a/dir/evil", body: "x"}}
		}},
		{name: "symlink replaced by file keeps target", entries: func(o string) []entry {
			return []entry{{name: "victim", typ: tar.TypeSymlink, link: o + "/victim"}, {name: "victim", body: "x"}}
		}},
		{name: "whiteout through symlinked parent", entries: func(o string) []entry {
			return []entry{{name: "dir", typ: tar.TypeSymlink, link: o}, {name: "dir/.wh.victim", body: ""}}
		}},
		{name: "opaque through symlinked parent", entries: func(o string) []entry {
			return []entry{{name: "dir", typ: tar.TypeSymlink, link: o}, {name: "dir/.wh..wh..opq", body: ""}}
		}},
		{name: "hard link to /etc/passwd", refused: true, entries: func(o string) []entry {
			return []entry{{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"}}
		}},
		{name: "hard link out with dotdot", refused: true, entries: func(o string) []entry {
			return []entry{{name: "victim", typ: tar.TypeLink, link: "../../../../../../../" + o + "/victim"}}
		}},
		{name: "hard link through symlinked parent", refused: true, entries: func(o string) []entry {
			return []entry{{name: "dir", typ: tar.TypeSymlink, link: o}, {name: "victim", typ: tar.TypeLink, link: "dir/victim"}}
		}},
		{name: "symlink chain", entries: func(o string) []entry {
			return []entry{{name: "b", typ: tar.TypeSymlink, link: o}, {name: "a", typ: tar.TypeSymlink, link: "b"}, {name: "a/evil", body: "x"}}
		}},
		{name: "directory replaced by symlink", entries: func(o string) []entry {
			return []entry{{name: "d/", typ: tar.TypeDir}, {name: "d/ok", body: "x"}, {name: "d", typ: tar.TypeSymlink, link: o}, {name: "d/evil", body: "x"}}
		}},
		{name: "hard link to a symlink pointing out, written through", entries: func(o string) []entry {
			return []entry{{name: "s", typ: tar.TypeSymlink, link: o + "/victim"}, {name: "h", typ: tar.TypeLink, link: "s"}, {name: "h", body: "x"}}
		}},
		{name: "whiteout of a symlink to the outside", entries: func(o string) []entry {
			return []entry{{name: "s", typ: tar.TypeSymlink, link: o + "/victim"}, {name: ".wh.s", body: ""}}
		}},
		{name: "whiteout of parent", refused: true, entries: func(o string) []entry {
			return []entry{{name: "a/.wh..", body: ""}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			outside := filepath.Join(top, "outside")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(outside, "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(filepath.Join(top, "images"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := s.Import(context.Background(), bytes.NewReader(mkTar(t, tc.entries(outside)...)), "evil")
			switch {
			case tc.refused && err == nil:
				t.Errorf("layer accepted")
			case tc.refused && !errors.Is(err, ErrUnsafeLayer):
				t.Errorf("refused with %v, want ErrUnsafeLayer", err)
			case !tc.refused && err != nil:
				t.Errorf("confinable layer refused: %v", err)
			}
			if err == nil {
				// Whatever the layer wrote is inside its own directory.
				dirs, err := s.LayerDirs(img)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("layer: %v", listTree(t, dirs[0]))
			}
			ents, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 {
				t.Errorf("outside dir has %d entries, want only victim", len(ents))
			}
			if data, err := os.ReadFile(victim); err != nil || string(data) != "precious" {
				t.Errorf("victim = %q, %v", data, err)
			}
			if _, err := os.Stat(filepath.Join(top, "evil")); !os.IsNotExist(err) {
				t.Errorf("evil written next to the store: %v", err)
			}
			buf := make([]byte, 8)
			if _, err := unix.Getxattr(outside, opaqueXattr, buf); !errors.Is(err, unix.ENODATA) {
				t.Errorf("outside dir got the opaque xattr: %v", err)
			}
			if data, err := os.ReadFile("/etc/passwd"); err != nil || !bytes.Equal(data, passwd) {
				t.Fatalf("/etc/passwd changed: %v", err)
			}
			if tc.refused {
				if n := countEntries(t, filepath.Join(top, "images", "layers", "sha256")); n != 0 {
					t.Errorf("refused layer left %d layer dirs", n)
				}
				if n := countEntries(t, filepath.Join(top, "images", "tmp")); n != 0 {
					t.Errorf("refused layer left %d tmp entries", n)
				}
			}
		})
	}
}

func listTree(t *testing.T, root string) []string {
	var names []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != root {
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
		}
		return nil
	})
	return names
}

// TestWhiteoutsThroughOverlay stacks two layers as overlay lowerdirs and checks
// that the upper layer's whiteout and opaque directory hide what they should.
func TestWhiteoutsThroughOverlay(t *testing.T) {
	testimage.RequireRoot(t)
	top := t.TempDir()
	s, err := Open(filepath.Join(top, "images"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lower := mkTar(t,
		entry{name: "a/", typ: tar.TypeDir},
		entry{name: "a/gone", body: "1"},
		entry{name: "a/kept", body: "1"},
		entry{name: "d/", typ: tar.TypeDir},
		entry{name: "d/old", body: "1"},
		entry{name: "d/sub/deep", body: "1"},
		entry{name: "keep", body: "1"},
	)
	upper := mkTar(t,
		entry{name: "a/.wh.gone"},
		entry{name: "d/", typ: tar.TypeDir, mode: 0o700},
		entry{name: "d/.wh..wh..opq"},
		entry{name: "d/new", body: "2"},
		entry{name: ".wh.keep-not-there"},
	)
	var dirs []string
	for i, layer := range [][]byte{lower, upper} {
		img, err := s.Import(ctx, bytes.NewReader(layer), "layer:"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.LayerDirs(img)
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d...)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dirs[1], "a/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout a/gone: mode %o rdev %d, %v", st.Mode, st.Rdev, err)
	}

	snaps := snapshot.New(filepath.Join(top, "snapshots"))
	target := filepath.Join(top, "rootfs")
	if err := snaps.Prepare("c1", dirs, target); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := snaps.Remove("c1", target); err != nil {
			t.Error(err)
		}
	}()
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(target, p)); return err == nil }
	for p, want := range map[string]bool{
		"a/gone": false, "a/kept": true, "d/old": false, "d/sub": false, "d/new": true, "keep": true,
	} {
		if got := exists(p); got != want {
			t.Errorf("%s exists = %v, want %v", p, got, want)
		}
	}
	var dst unix.Stat_t
	if err := unix.Stat(filepath.Join(target, "d"), &dst); err != nil || dst.Mode&0o777 != 0o700 {
		t.Errorf("d mode %o, %v: the upper layer's directory metadata wins", dst.Mode&0o777, err)
	}
}
