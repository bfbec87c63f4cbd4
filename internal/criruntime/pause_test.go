package criruntime

import (
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
)

// A pause binary written while other goroutines start processes can be run
// at once: none of those processes held it open for writing (ETXTBSY).
func TestWriteExecutableWhileForking(t *testing.T) {
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_ = exec.Command("/bin/true").Run()
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for i := 0; i < 200; i++ {
		name, err := writeExecutable(dir, data)
		if err != nil {
			t.Fatal(err)
		}
		err = exec.Command(name).Run()
		os.Remove(name)
		if err != nil {
			t.Fatalf("run the file just written (attempt %d): %v", i, err)
		}
	}
}
