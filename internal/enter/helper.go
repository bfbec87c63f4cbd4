package enter

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Helper is peapod-enter copied into a sealed memfd, which is what runs,
// as a fork server started at the first command and again whenever it has
// exited. A container process that gets hold of /proc/PID/exe of a child
// (CVE-2019-5736) finds an anonymous, write-sealed file: the binary on the
// host cannot be reached through it, let alone rewritten.
type Helper struct {
	f       *os.File
	devNull *os.File // every command's stdin

	mu  sync.Mutex
	srv *server
}

// OpenHelper copies the peapod-enter binary at path into a sealed memfd.
func OpenHelper(path string) (*Helper, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("peapod-enter", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:peapod-enter")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy %s: %w", path, err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the copy of %s: %w", path, err)
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Helper{f: f, devNull: devNull}, nil
}

// server returns the running peapod-enter, started if need be.
func (h *Helper) server() (*server, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv == nil || !h.srv.alive() {
		srv, err := startServer(h.path())
		if err != nil {
			return nil, err
		}
		h.srv = srv
	}
	return h.srv, nil
}

// path is where a process forked by the daemon finds the helper: the
// memfd is close-on-exec, but still open while execve resolves the path.
func (h *Helper) path() string { return fmt.Sprintf("/proc/self/fd/%d", h.f.Fd()) }

// Close stops peapod-enter and releases the memfd.
func (h *Helper) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		h.srv.close()
		h.srv = nil
	}
	h.devNull.Close()
	return h.f.Close()
}
