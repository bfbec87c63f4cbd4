package criruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/enter"
	"github.com/peapod-dev/peapod/internal/oci"
)

// maxExecSyncOutput caps each of stdout and stderr of ExecSync, as
// containerd's maxExecSyncSize does.
const maxExecSyncOutput = 16 * 1024 * 1024

// ExecSync runs a command in a running container and returns its output and
// exit code. With a timeout the command is killed when it passes (no process
// or zombie is left) and the call fails with DeadlineExceeded.
func (s *Service) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	resp, err := s.execSync(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

func (s *Service) execSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	id := req.GetContainerId()
	if len(req.GetCmd()) == 0 {
		return nil, invalidf("exec needs a command")
	}
	rec, err := s.getContainer(id)
	if err != nil {
		return nil, err
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, &StateError{Op: "exec in container", ID: id, State: rec.State.String()}
	}
	ctx = s.logWith(ctx, "containerid", id)
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	stdout := &cappedBuffer{max: maxExecSyncOutput}
	stderr := &cappedBuffer{max: maxExecSyncOutput}
	code, err := s.execLean(ctx, rec, req.GetCmd(), stdout, stderr)
	if errors.Is(err, enter.ErrUnsupported) {
		s.log.DebugContext(ctx, "exec through runc", "reason", err)
		code, err = s.execRunc(ctx, id, req.GetCmd(), stdout, stderr)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("command %q timed out after %ds: %w", req.GetCmd(), req.GetTimeout(), context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// execRunc runs args in the container through runc exec.
func (s *Service) execRunc(ctx context.Context, id string, args []string, stdout, stderr io.Writer) (int, error) {
	p, err := s.execProcess(id, args)
	if err != nil {
		return -1, err
	}
	return s.cfg.Runc.Exec(ctx, id, p, oci.ExecOpts{Stdout: stdout, Stderr: stderr})
}

// execLean runs args in the container through peapod-enter; it fails with
// enter.ErrUnsupported, before running anything, when runc must do it.
func (s *Service) execLean(ctx context.Context, rec containerRecord, args []string, stdout, stderr io.Writer) (int, error) {
	if s.enter == nil {
		return -1, fmt.Errorf("no peapod-enter configured: %w", enter.ErrUnsupported)
	}
	b, err := s.execBundle(rec.ID)
	if err != nil {
		return -1, err
	}
	if b.unsupported != nil {
		return -1, b.unsupported
	}
	b.mu.Lock()
	if b.target == nil {
		if b.target, err = enter.OpenTarget(rec.Pid, rec.CgroupPath); err != nil {
			b.mu.Unlock()
			return -1, err
		}
	}
	b.users++
	t := b.target
	b.mu.Unlock()
	defer b.release()
	return enter.Run(ctx, enter.Request{Helper: s.enter, Target: t, Process: b.proc, Args: args, Stdout: stdout, Stderr: stderr})
}

// execBundle is what every exec in a container starts from, prepared once
// (a probe execs every period): its process, and its init process opened.
type execBundle struct {
	proc *enter.Process
	// unsupported says why the lean path cannot run this container's
	// processes (wrapping enter.ErrUnsupported).
	unsupported error

	mu     sync.Mutex
	target *enter.Target // opened at the first exec
	users  int           // execs using target
	closed bool          // the container is gone: close target when unused
}

func (b *execBundle) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.users--
	b.closeIfDone()
}

// close is called once the container is removed; a running exec keeps the
// target open until it ends.
func (b *execBundle) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.closeIfDone()
}

func (b *execBundle) closeIfDone() {
	if b.closed && b.users == 0 && b.target != nil {
		b.target.Close()
		b.target = nil
	}
}

func (s *Service) execBundle(id string) (*execBundle, error) {
	if b, ok := s.execBundles.Load(id); ok {
		return b.(*execBundle), nil
	}
	spec, err := s.bundle(id)
	if err != nil {
		return nil, err
	}
	b := &execBundle{}
	if b.proc, err = enter.NewProcess(id, spec); err != nil {
		if !errors.Is(err, enter.ErrUnsupported) {
			return nil, fmt.Errorf("exec in container %s: %w", id, err)
		}
		b.unsupported = err
	}
	if prev, loaded := s.execBundles.LoadOrStore(id, b); loaded {
		return prev.(*execBundle), nil
	}
	return b, nil
}

// bundle reads the container's config.json.
func (s *Service) bundle(id string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(s.containerDir(id), "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle of container %s: %w", id, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("decode bundle of container %s: %w", id, err)
	}
	return &spec, nil
}

// execProcess is the container's process (user, env, cwd, capabilities)
// running args instead, without a terminal.
func (s *Service) execProcess(id string, args []string) (*specs.Process, error) {
	spec, err := s.bundle(id)
	if err != nil {
		return nil, err
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("bundle of container %s has no process", id)
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = false
	p.ConsoleSize = nil
	return &p, nil
}

// cappedBuffer keeps at most max bytes and discards the rest.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
