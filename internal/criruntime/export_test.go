package criruntime

import (
	"bytes"
	"context"
	"io"
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
	return s.execRunc(ctx, id, cmd, stdout, stderr)
}
