package image

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/testimage"
)

// TestMountedLayers sees the lower layers of both kinds of overlay mount:
// few layers (mount(2)) and many (new mount API, one option per layer).
func TestMountedLayers(t *testing.T) {
	testimage.RequireRoot(t)
	for _, n := range []int{2, 80} {
		top := t.TempDir()
		var lowers []string
		for i := 0; i < n; i++ {
			d := filepath.Join(top, "layers", fmt.Sprintf("%064d", i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			lowers = append(lowers, d)
		}
		s := snapshot.New(filepath.Join(top, "snapshots"))
		target := filepath.Join(top, "rootfs")
		if err := s.Prepare("k", lowers, target); err != nil {
			t.Fatal(err)
		}
		used, err := mountedLayers()
		if rerr := s.Remove("k", target); rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lowers {
			if !used[l] {
				t.Errorf("%d layers: %s not seen as mounted", n, l)
			}
		}
	}
}
