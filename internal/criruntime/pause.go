package criruntime

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// preparePauseRootfs makes DIR/pause/rootfs: a root filesystem that holds
// only /pause (a copy of peapod-pause) and the mount points runc needs. Every
// sandbox uses it read-only. A changed peapod-pause replaces /pause by rename,
// so running pause processes keep their old file.
func (s *Service) preparePauseRootfs() error {
	s.pauseOnce.Lock()
	defer s.pauseOnce.Unlock()
	root := s.pauseRootfs()
	for _, d := range []string{"proc", "dev", "sys", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("prepare pause rootfs: %w", err)
		}
	}
	want, err := os.ReadFile(s.cfg.PauseBinary)
	if err != nil {
		return fmt.Errorf("prepare pause rootfs: read pause binary: %w", err)
	}
	dst := filepath.Join(root, "pause")
	if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, want) {
		return nil
	}
	tmp, err := writeExecutable(root, want)
	if err != nil {
		return fmt.Errorf("prepare pause rootfs: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("prepare pause rootfs: install /pause: %w", err)
	}
	return nil
}

// writeExecutable writes data to a new executable file in dir and returns its
// name. No process is forked while the file is open for writing: a child
// forked meanwhile would hold the descriptor until its own exec, and an exec
// of the file then fails with ETXTBSY (golang/go#22315) — for pause, after
// runc has already reported the sandbox started.
func writeExecutable(dir string, data []byte) (string, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	f, err := os.CreateTemp(dir, ".pause-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o755)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// pauseLogName is the file in the sandbox directory that gets pause's stdout
// and stderr.
const pauseLogName = "pause.log"

// pauseOutput returns the end of what pause wrote, for the log line that
// reports its exit. pause writes at most a warning, its shutdown line or a
// crash's trace, so the file is read whole.
func (s *Service) pauseOutput(id string) string {
	const keep = 2048
	b, err := os.ReadFile(filepath.Join(s.sandboxDir(id), pauseLogName))
	if err != nil {
		return err.Error()
	}
	return string(b[max(0, len(b)-keep):])
}
