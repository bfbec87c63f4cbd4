package criruntime

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	tmp, err := os.CreateTemp(root, ".pause-*")
	if err != nil {
		return fmt.Errorf("prepare pause rootfs: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, bytes.NewReader(want)); err != nil {
		tmp.Close()
		return fmt.Errorf("prepare pause rootfs: copy pause binary: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("prepare pause rootfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("prepare pause rootfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("prepare pause rootfs: install /pause: %w", err)
	}
	return nil
}
