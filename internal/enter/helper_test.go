package enter

import (
	"os"
	"testing"
)

// What runs is a sealed copy: neither it nor, through it, the binary on the
// host can be written.
func TestHelperIsSealed(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h, err := OpenHelper(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if f, err := os.OpenFile(h.path(), os.O_WRONLY, 0); err == nil {
		_, werr := f.Write([]byte("x"))
		f.Close()
		if werr == nil {
			t.Error("the helper's memfd is writable")
		}
	}
	if err := h.f.Truncate(0); err == nil {
		t.Error("the helper's memfd can be truncated")
	}
	if _, err := OpenHelper("/no/such/peapod-enter"); err == nil {
		t.Error("a missing binary was accepted")
	}
}
