package criruntime

import (
	"bytes"
	"context"
	"io"

	"github.com/peapod-dev/peapod/internal/oci"
)

// ExecLean runs cmd through peapod-enter only (no fallback to runc), for
// tests that compare it with runc exec.
func (s *Service) ExecLean(ctx context.Context, id string, cmd []string) (stdout, stderr string, code int, err error) {
	rec, err := s.getContainer(id)
	if err != nil {
		return "", "", -1, err
	}
	var o, e bytes.Buffer
	code, err = s.execLean(ctx, rec, cmd, &o, &e)
	return o.String(), e.String(), code, err
}

// ExecRunc runs cmd through runc exec only.
func (s *Service) ExecRunc(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	p, err := s.execProcess(id, cmd)
	if err != nil {
		return -1, err
	}
	return s.cfg.Runc.Exec(ctx, id, p, oci.ExecOpts{Stdout: stdout, Stderr: stderr})
}
