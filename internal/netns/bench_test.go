package netns

import (
	"strconv"
	"testing"
)

// BenchmarkNewRemove measures pinning and unpinning a network namespace.
func BenchmarkNewRemove(b *testing.B) {
	requireRoot(b)
	dir := tempDir(b)
	for i := 0; b.Loop(); i++ {
		p, err := New(dir, strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		if err := Remove(p); err != nil {
			b.Fatal(err)
		}
	}
}
