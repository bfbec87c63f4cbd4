// Package oci drives the runc binary and builds OCI runtime specs.
//
// Like containerd's go-runc, it runs runc with --root and --log-format json so
// that runc's own error message can be returned to the caller; when the
// caller's stdio is handed to the container (create, exec) runc's log goes to a
// file per call instead of stderr.
package oci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var (
	// ErrNotExist is returned when runc does not know the container.
	ErrNotExist = errors.New("container does not exist")
	// ErrNotRunning is returned when the operation needs a running container.
	ErrNotRunning = errors.New("container not running")
)

// execWaitDelay bounds how long Exec waits for the stdio copies once the
// process is gone: a background process in the container may hold them open.
const execWaitDelay = 2 * time.Second

// Runc runs the runc binary Binary with state kept under Root.
type Runc struct {
	Binary string
	Root   string
}

// CreateOpts are the options of Create. Nil stdio files mean /dev/null.
type CreateOpts struct {
	PidFile string
	Stdin   *os.File
	Stdout  *os.File
	Stderr  *os.File
	// ConsoleSocket receives the terminal of a process with Terminal set
	// (see ConsoleSocket); the stdio files are then unused.
	ConsoleSocket string
}

// ExecOpts are the options of Exec. Nil stdio means /dev/null.
type ExecOpts struct {
	Stdin io.Reader
	// Stdout receives the terminal's output when the process has Terminal
	// set; Stderr is then unused.
	Stdout io.Writer
	Stderr io.Writer
	// Resize changes the terminal's size, for a process with Terminal set.
	Resize <-chan TerminalSize
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct {
	Width, Height uint16
}

// State is what `runc state` reports.
type State struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Pid    int    `json:"pid"`
	Bundle string `json:"bundle"`
}

// Create runs `runc create`: the container's init process is set up and waits
// for Start. The stdio files are inherited by the container process.
func (r *Runc) Create(ctx context.Context, id, bundle string, o CreateOpts) error {
	return r.create(ctx, []string{"create"}, id, bundle, o)
}

// Run runs `runc run --detach`: Create and Start in one runc call, for a
// container whose process may start at once. It returns once the process
// runs; its stdio are o's.
func (r *Runc) Run(ctx context.Context, id, bundle string, o CreateOpts) error {
	return r.create(ctx, []string{"run", "--detach"}, id, bundle, o)
}

func (r *Runc) create(ctx context.Context, verb []string, id, bundle string, o CreateOpts) error {
	args := append(slices.Clone(verb), "--bundle", bundle)
	if o.PidFile != "" {
		args = append(args, "--pid-file", o.PidFile)
	}
	if o.ConsoleSocket != "" {
		args = append(args, "--console-socket", o.ConsoleSocket)
	}
	args = append(args, id)
	// runc's log goes to the bundle, not to stderr, which is the
	// container's. Kept there if we die mid-call, it goes with the bundle.
	if fi, err := os.Stat(bundle); err != nil || !fi.IsDir() {
		if err == nil {
			err = syscall.ENOTDIR
		}
		return fmt.Errorf("runc %s %s: bundle: %w", verb[0], id, err)
	}
	logFile := filepath.Join(bundle, "runc-create.log")
	defer os.Remove(logFile)
	cmd := r.command(logFile, args...)
	// Assigning a nil *os.File to an io.Reader/Writer field would make it
	// non-nil, so only set what was given.
	if o.Stdin != nil {
		cmd.Stdin = o.Stdin
	}
	if o.Stdout != nil {
		cmd.Stdout = o.Stdout
	}
	if o.Stderr != nil {
		cmd.Stderr = o.Stderr
	}
	if err := runWithContext(ctx, cmd); err != nil {
		return wrapRuncError("runc "+strings.Join(args, " "), readLogErrors(logFile), err)
	}
	return nil
}

// Start runs `runc start`: the created container executes its process.
func (r *Runc) Start(ctx context.Context, id string) error {
	_, err := r.run(ctx, nil, "start", id)
	return err
}

// State runs `runc state`.
func (r *Runc) State(ctx context.Context, id string) (*State, error) {
	out, err := r.run(ctx, nil, "state", id)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("runc state %s: decoding %q: %w", id, out, err)
	}
	return &s, nil
}

// Kill sends sig to the container's init process, or to all its processes.
func (r *Runc) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, id, strconv.Itoa(int(sig)))
	_, err := r.run(ctx, nil, args...)
	return err
}

// Delete runs `runc delete`. A container runc does not know is not an error,
// so that removal can be retried.
func (r *Runc) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	args = append(args, id)
	_, err := r.run(ctx, nil, args...)
	if errors.Is(err, ErrNotExist) {
		return nil
	}
	return err
}

// Update changes the container's cgroup resources.
func (r *Runc) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("runc update %s: encoding resources: %w", id, err)
	}
	_, err = r.run(ctx, bytes.NewReader(data), "update", "--resources", "-", id)
	return err
}

// Exec runs p in the container with the given stdio and returns its exit
// code, 128+signal when a signal ended it. runc stays the parent of the
// process and reaps it, so nothing is left behind. When ctx ends first the
// process is killed and the error wraps ctx.Err(). A process with Terminal
// set gets a terminal whose output goes to o.Stdout.
func (r *Runc) Exec(ctx context.Context, id string, p *specs.Process, o ExecOpts) (int, error) {
	dir, err := os.MkdirTemp("", "peapod-exec-")
	if err != nil {
		return -1, fmt.Errorf("runc exec %s: %w", id, err)
	}
	defer os.RemoveAll(dir)

	procFile := filepath.Join(dir, "process.json")
	pidFile := filepath.Join(dir, "pid")
	logFile := filepath.Join(dir, "log.json")
	// Not exec.CommandContext: on cancel the process in the container must
	// die, not only runc, or it would be left running.
	cmd := r.command(logFile, "exec", "--process", procFile, "--pid-file", pidFile, id)
	var term *terminal
	var stdinW *os.File
	if p.Terminal {
		if term, err = newTerminal(cmd, o); err != nil {
			return -1, fmt.Errorf("runc exec %s: %w", id, err)
		}
		defer term.close()
		if term.size != nil {
			// The process starts with its size rather than get it later.
			withSize := *p
			withSize.ConsoleSize = &specs.Box{Height: uint(term.size.Height), Width: uint(term.size.Width)}
			p = &withSize
		}
	} else {
		cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
		cmd.WaitDelay = execWaitDelay
		if stdinW, err = setStdin(cmd, o.Stdin); err != nil {
			return -1, fmt.Errorf("runc exec %s: %w", id, err)
		}
		if stdinW != nil {
			defer stdinW.Close()
		}
	}
	data, err := json.Marshal(p)
	if err != nil {
		return -1, fmt.Errorf("runc exec %s: encoding process: %w", id, err)
	}
	if err := os.WriteFile(procFile, data, 0o600); err != nil {
		return -1, fmt.Errorf("runc exec %s: %w", id, err)
	}
	if err := cmd.Start(); err != nil {
		if stdinW != nil {
			cmd.Stdin.(*os.File).Close()
		}
		return -1, fmt.Errorf("runc exec %s: %w", id, err)
	}
	done := make(chan struct{})
	cancelled := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			killExec(pidFile, done)
			close(cancelled)
		case <-done:
		}
	}()
	if term != nil {
		term.started(cmd.Process, done)
	}
	if stdinW != nil {
		cmd.Stdin.(*os.File).Close()
		go func() {
			_, _ = io.Copy(stdinW, o.Stdin)
			stdinW.Close()
		}()
	}
	err = cmd.Wait()
	close(done)
	if term != nil {
		term.drain()
	}
	select {
	case <-cancelled:
		return -1, fmt.Errorf("runc exec %s: %w", id, ctx.Err())
	default:
	}

	if msg := readLogErrors(logFile); msg != "" {
		return -1, wrapRuncError(fmt.Sprintf("runc exec %s", id), msg, err)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		return 0, nil
	case errors.As(err, &exitErr):
		return exitStatus(exitErr.Sys().(syscall.WaitStatus)), nil
	default:
		return -1, fmt.Errorf("runc exec %s: %w", id, err)
	}
}

// setStdin gives cmd the reader as stdin. A reader that is not a file is
// copied through a pipe that Exec closes when the process is gone, without
// waiting for the reader: os/exec would wait for its EOF (or WaitDelay), and
// an interactive session's stdin may stay open after the process exits.
func setStdin(cmd *exec.Cmd, r io.Reader) (*os.File, error) {
	if r == nil {
		return nil, nil
	}
	if f, ok := r.(*os.File); ok {
		cmd.Stdin = f
		return nil, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = pr
	return pw, nil
}

// killExec kills the exec'd process once runc has written its pid, unless
// runc exits first. Killing runc instead would leave the process running: runc
// writes the pid file only after the process has started.
func killExec(pidFile string, runcDone <-chan struct{}) {
	for {
		if data, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				// runc reaps the process only after it died, so the pid
				// cannot have been reused.
				_ = syscall.Kill(pid, syscall.SIGKILL)
				return
			}
		}
		select {
		case <-runcDone:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// exitStatus converts a wait status into the shell's convention.
func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// command builds a runc command line; logFile "" leaves runc's log on stderr.
func (r *Runc) command(logFile string, args ...string) *exec.Cmd {
	global := []string{"--root", r.Root, "--log-format", "json"}
	if logFile != "" {
		global = append(global, "--log", logFile)
	}
	cmd := exec.Command(r.Binary, append(global, args...)...)
	cmd.Env = Environ()
	return cmd
}

// Environ is the environment for runc: the caller's without NOTIFY_SOCKET,
// with which runc would pass systemd's notify socket to the container and
// `runc start` would wait for the container to report ready.
func Environ() []string {
	env := os.Environ()
	out := env[:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			out = append(out, kv)
		}
	}
	return out
}

// run runs a runc command whose stdout is captured and returned and whose
// stderr carries runc's JSON log.
func (r *Runc) run(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := r.command("", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := runWithContext(ctx, cmd); err != nil {
		return nil, wrapRuncError("runc "+strings.Join(args, " "), logErrors(stderr.Bytes()), err)
	}
	return stdout.Bytes(), nil
}

// runWithContext runs cmd and kills runc when ctx ends first.
func runWithContext(ctx context.Context, cmd *exec.Cmd) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	if !stop() && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// wrapRuncError builds the error of a failed runc call from runc's message,
// mapping the messages callers act on to sentinels.
func wrapRuncError(what, msg string, err error) error {
	switch {
	case msg == "":
		return fmt.Errorf("%s: %w", what, err)
	case strings.Contains(msg, "does not exist"):
		return fmt.Errorf("%s: %s: %w", what, msg, ErrNotExist)
	case strings.Contains(msg, "not running"):
		return fmt.Errorf("%s: %s: %w", what, msg, ErrNotRunning)
	default:
		return fmt.Errorf("%s: %s: %w", what, msg, err)
	}
}

func readLogErrors(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return logErrors(data)
}

// logErrors extracts the error messages of runc's JSON log; text that is not
// JSON (a panic, a message from the Go runtime) is returned as it is.
func logErrors(data []byte) string {
	var msgs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			msgs = append(msgs, string(line))
			continue
		}
		if e.Level == "error" || e.Level == "fatal" || e.Level == "panic" {
			msgs = append(msgs, e.Msg)
		}
	}
	return strings.Join(msgs, "; ")
}
