package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const runcBinary = "/usr/sbin/runc"

// requireRunc skips without root or runc, and fails instead when CI=true.
func requireRunc(t testing.TB) {
	t.Helper()
	var missing string
	if os.Geteuid() != 0 {
		missing = "root"
	} else if _, err := os.Stat(runcBinary); err != nil {
		missing = runcBinary + " (apt-get install runc)"
	} else if _, err := os.Stat("/bin/busybox"); err != nil {
		missing = "/bin/busybox (apt-get install busybox-static)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing prerequisite: %s", missing)
	}
	t.Skipf("missing prerequisite: %s", missing)
}

func randomID(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "peapod-oci-test-" + hex.EncodeToString(b)
}

// newBundle makes a bundle whose rootfs holds busybox and runs args.
func newBundle(t testing.TB, id string, args ...string) string {
	t.Helper()
	bundle := t.TempDir()
	bin := filepath.Join(bundle, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sh", "sleep", "echo", "cat", "true", "false", "kill", "stty", "[", "grep", "wc"} {
		if err := os.Symlink("busybox", filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := DefaultSpec()
	s.Process.Args = args
	s.Process.Env = []string{"PATH=/bin"}
	s.Linux.CgroupsPath = "/" + id
	if err := WriteBundle(bundle, s); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func newRunc(t testing.TB) *Runc {
	requireRunc(t)
	return &Runc{Binary: runcBinary, Root: t.TempDir()}
}

// cleanupContainer force-deletes the container when the test ends, whatever
// state the test left it in.
func cleanupContainer(t testing.TB, r *Runc, id string) {
	t.Cleanup(func() {
		if err := r.Delete(context.Background(), id, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func waitStatus(t *testing.T, r *Runc, id, want string) *State {
	t.Helper()
	ctx := t.Context()
	for {
		st, err := r.State(ctx, id)
		if err != nil {
			t.Fatalf("state: %v", err)
		}
		if st.Status == want {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %s never became %s (is %s)", id, want, st.Status)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// announcingBundle prepares a container, removed when the test ends, that
// prints "started" and sleeps; opts send its output to the file out and
// have runc write its pid to opts.PidFile.
func announcingBundle(t *testing.T, r *Runc) (id, bundle string, opts CreateOpts, out string) {
	t.Helper()
	id = randomID(t)
	bundle = newBundle(t, id, "sh", "-c", "echo started; exec sleep 1000")
	cleanupContainer(t, r, id)
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return id, bundle, CreateOpts{PidFile: filepath.Join(t.TempDir(), "pid"), Stdout: f, Stderr: f}, f.Name()
}

func TestLifecycle(t *testing.T) {
	r := newRunc(t)
	ctx := t.Context()
	id, bundle, opts, out := announcingBundle(t, r)
	if err := r.Create(ctx, id, bundle, opts); err != nil {
		t.Fatalf("create: %v", err)
	}
	st, err := r.State(ctx, id)
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if st.ID != id || st.Status != "created" || st.Bundle != bundle || st.Pid <= 0 {
		t.Fatalf("state after create = %+v", st)
	}
	pidData, err := os.ReadFile(opts.PidFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(pidData)); got != strconv.Itoa(st.Pid) {
		t.Fatalf("pid file %q, state pid %d", got, st.Pid)
	}

	if err := r.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitStatus(t, r, id, "running")
	waitFile(t, out, "started\n")

	if err := r.Kill(ctx, id, syscall.SIGKILL, false); err != nil {
		t.Fatalf("kill: %v", err)
	}
	waitStatus(t, r, id, "stopped")
	if err := r.Kill(ctx, id, syscall.SIGKILL, false); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("kill of a stopped container: %v, want ErrNotRunning", err)
	}
	if err := r.Start(ctx, id); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("start of a stopped container: %v, want runc's message", err)
	}

	if err := r.Delete(ctx, id, false); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := r.Delete(ctx, id, false); err != nil {
		t.Fatalf("second delete: %v, want nil", err)
	}
	if _, err := r.State(ctx, id); !errors.Is(err, ErrNotExist) {
		t.Fatalf("state after delete: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", id)); !os.IsNotExist(err) {
		t.Fatalf("cgroup left after delete: %v", err)
	}
}

// waitFile waits until the file at path holds want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	for {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) == want {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s holds %q, want %q", path, data, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// startSleeper runs a container that sleeps until the test ends.
func startSleeper(t *testing.T, r *Runc) string {
	t.Helper()
	id := randomID(t)
	bundle := newBundle(t, id, "sleep", "1000")
	cleanupContainer(t, r, id)
	if err := r.Create(t.Context(), id, bundle, CreateOpts{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := r.Start(t.Context(), id); err != nil {
		t.Fatalf("start: %v", err)
	}
	return id
}

func process(args ...string) *specs.Process {
	return &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}}
}

func TestExec(t *testing.T) {
	r := newRunc(t)
	id := startSleeper(t, r)
	ctx := t.Context()

	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -9 $$", 137},
		{"kill -15 $$", 143},
	} {
		code, err := r.Exec(ctx, id, process("sh", "-c", tc.script), ExecOpts{})
		if err != nil {
			t.Fatalf("exec %q: %v", tc.script, err)
		}
		if code != tc.want {
			t.Errorf("exec %q: exit code %d, want %d", tc.script, code, tc.want)
		}
	}

	var stdout, stderr bytes.Buffer
	code, err := r.Exec(ctx, id, process("sh", "-c", "cat; echo oops >&2"), ExecOpts{
		Stdin: strings.NewReader("hello\n"), Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil || code != 0 {
		t.Fatalf("exec with stdio: code %d, err %v", code, err)
	}
	if stdout.String() != "hello\n" || stderr.String() != "oops\n" {
		t.Fatalf("exec stdio: stdout %q, stderr %q", stdout.String(), stderr.String())
	}

	_, err = r.Exec(ctx, id, process("no-such-binary"), ExecOpts{})
	if err == nil || !strings.Contains(err.Error(), "no-such-binary") {
		t.Fatalf("exec of a missing binary: %v, want runc's message naming it", err)
	}
	_, err = r.Exec(ctx, "no-such-container", process("true"), ExecOpts{})
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("exec in a missing container: %v, want ErrNotExist", err)
	}
}

// TestExecCancel checks that cancelling an Exec kills the process in the
// container instead of leaving it behind.
func TestExecCancel(t *testing.T) {
	r := newRunc(t)
	id := startSleeper(t, r)

	ctx, cancel := context.WithCancel(t.Context())
	var stdout bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		_, err := r.Exec(ctx, id, process("sh", "-c", "echo up; exec sleep 1000"), ExecOpts{Stdout: &notifyWriter{w: &stdout, up: cancel}})
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled exec: %v, want context.Canceled", err)
	}
	procs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", id, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(string(procs))); n != 1 {
		t.Fatalf("container has %d processes after a cancelled exec, want 1 (the init): %s", n, procs)
	}
}

// notifyWriter calls up once the process has written: it runs.
type notifyWriter struct {
	w  *bytes.Buffer
	up func()
}

func (l *notifyWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	l.up()
	return n, err
}

func TestUpdate(t *testing.T) {
	r := newRunc(t)
	id := startSleeper(t, r)
	limit := int64(64 << 20)
	if err := r.Update(t.Context(), id, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}); err != nil {
		t.Fatalf("update: %v", err)
	}
	st, err := r.State(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	// The memory hierarchy may be nested under the test's own cgroup.
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(st.Pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	var memPath string
	for _, line := range strings.Split(string(data), "\n") {
		if _, p, ok := strings.Cut(line, ":memory:"); ok {
			memPath = p
		}
	}
	got, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", memPath, "memory.limit_in_bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != strconv.FormatInt(limit, 10) {
		t.Fatalf("memory limit %s, want %d", got, limit)
	}
	if err := r.Update(t.Context(), "no-such-container", &specs.LinuxResources{}); !errors.Is(err, ErrNotExist) {
		t.Fatalf("update of a missing container: %v, want ErrNotExist", err)
	}
}

// Run creates and starts in one call.
func TestRun(t *testing.T) {
	r := newRunc(t)
	ctx := t.Context()
	id, bundle, opts, out := announcingBundle(t, r)
	if err := r.Run(ctx, id, bundle, opts); err != nil {
		t.Fatalf("run: %v", err)
	}
	st, err := r.State(ctx, id)
	if err != nil {
		t.Fatalf("state: %v", err)
	}
	if st.Status != "running" {
		t.Fatalf("state after run = %+v, want running", st)
	}
	if pidData, err := os.ReadFile(opts.PidFile); err != nil || strings.TrimSpace(string(pidData)) != strconv.Itoa(st.Pid) {
		t.Fatalf("pid file %q (%v), state pid %d", pidData, err, st.Pid)
	}
	waitFile(t, out, "started\n")
	if err := r.Run(ctx, id, bundle, CreateOpts{}); err == nil {
		t.Fatal("a second run with the same id succeeded")
	}
	if err := r.Run(ctx, randomID(t), filepath.Join(t.TempDir(), "missing"), CreateOpts{}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "runc run") {
		t.Fatalf("run of a missing bundle: %v", err)
	}
}

func TestCreateErrors(t *testing.T) {
	r := newRunc(t)
	ctx := t.Context()
	id := randomID(t)
	cleanupContainer(t, r, id)

	err := r.Create(ctx, id, t.TempDir(), CreateOpts{})
	if err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("create from an empty bundle: %v, want runc's message naming config.json", err)
	}
	if _, err := r.State(ctx, id); !errors.Is(err, ErrNotExist) {
		t.Fatalf("state after a failed create: %v, want ErrNotExist", err)
	}

	missing := filepath.Join(t.TempDir(), "missing")
	if err := r.Create(ctx, id, missing, CreateOpts{}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "bundle") {
		t.Fatalf("create from a missing bundle: %v", err)
	}

	bundle := newBundle(t, id, "no-such-binary")
	err = r.Create(ctx, id, bundle, CreateOpts{})
	if err == nil || !strings.Contains(err.Error(), "no-such-binary") {
		t.Fatalf("create with a missing binary: %v, want runc's message naming it", err)
	}

	bad := &Runc{Binary: filepath.Join(t.TempDir(), "no-runc"), Root: r.Root}
	if err := bad.Start(ctx, id); !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing runc binary: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	r := newRunc(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.State(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("state with a cancelled context: %v", err)
	}
}

func TestExecTerminal(t *testing.T) {
	r := newRunc(t)
	id := startSleeper(t, r)

	resize := make(chan TerminalSize, 1)
	resize <- TerminalSize{Width: 123, Height: 45}
	p := process("sh", "-c", "read x; echo got:$x; stty size; [ -t 0 ] && echo tty; exit 4")
	p.Terminal = true
	var out bytes.Buffer
	code, err := r.Exec(t.Context(), id, p, ExecOpts{Stdin: strings.NewReader("hello\n"), Stdout: &out, Resize: resize})
	if err != nil {
		t.Fatalf("exec with a terminal: %v", err)
	}
	if code != 4 {
		t.Errorf("exit code %d, want 4", code)
	}
	// The terminal echoes the input and ends lines with CR LF.
	for _, want := range []string{"got:hello\r\n", "45 123\r\n", "tty\r\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("terminal output %q lacks %q", out.String(), want)
		}
	}
}

// readyWriter closes ready when the output holds "ready".
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.ready != nil && strings.Contains(w.buf.String(), "ready") {
		close(w.ready)
		w.ready = nil
	}
	return len(p), nil
}

func TestExecTerminalResize(t *testing.T) {
	r := newRunc(t)
	id := startSleeper(t, r)

	resize := make(chan TerminalSize)
	ready := make(chan struct{})
	out := &readyWriter{ready: ready}
	go func() {
		<-ready
		resize <- TerminalSize{Width: 60, Height: 50}
	}()
	p := process("sh", "-c", `echo ready; while [ "$(stty size)" != "50 60" ]; do sleep 0.01; done; echo resized`)
	p.Terminal = true
	code, err := r.Exec(t.Context(), id, p, ExecOpts{Stdout: out, Resize: resize})
	if err != nil || code != 0 {
		t.Fatalf("exec: code %d, %v", code, err)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if !strings.Contains(out.buf.String(), "resized") {
		t.Fatalf("output %q", out.buf.String())
	}
}

func TestCreateWithTerminal(t *testing.T) {
	r := newRunc(t)
	id := randomID(t)
	bundle := newBundle(t, id, "sh", "-c", "[ -t 0 ] && echo tty; read x; echo got:$x")
	s := DefaultSpec()
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, s); err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = true
	if err := WriteBundle(bundle, s); err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, r, id)

	cs, err := NewConsoleSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := r.Create(t.Context(), id, bundle, CreateOpts{ConsoleSocket: cs.Path()}); err != nil {
		t.Fatalf("create: %v", err)
	}
	master, err := cs.ReceiveMaster(10 * time.Second)
	if err != nil {
		t.Fatalf("receiving the terminal: %v", err)
	}
	defer master.Close()
	if err := r.Start(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := master.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 1024)
	for !strings.Contains(out.String(), "got:hi") {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("reading the terminal: %v (read %q)", err, out.String())
		}
		out.Write(buf[:n])
	}
	if !strings.Contains(out.String(), "tty\r\n") {
		t.Fatalf("terminal output %q", out.String())
	}
}

// TestExecOpenStdin: a session's stdin may stay open after the process
// exits; Exec returns with the process.
func TestExecOpenStdin(t *testing.T) {
	r := newRunc(t)
	id := startSleeper(t, r)
	stdin, w := io.Pipe()
	defer w.Close()
	go w.Write([]byte("line\n"))
	var out bytes.Buffer
	code, err := r.Exec(t.Context(), id, process("sh", "-c", "read x; echo $x; exit 3"), ExecOpts{Stdin: stdin, Stdout: &out})
	if err != nil || code != 3 {
		t.Fatalf("exec: code %d, %v", code, err)
	}
	if out.String() != "line\n" {
		t.Fatalf("stdout %q", out.String())
	}
}

// BenchmarkExec measures an exec of `true`, as an exec probe does.
func BenchmarkExec(b *testing.B) {
	r := newRunc(b)
	id := randomID(b)
	bundle := newBundle(b, id, "sleep", "1000")
	cleanupContainer(b, r, id)
	if err := r.Create(b.Context(), id, bundle, CreateOpts{}); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(b.Context(), id); err != nil {
		b.Fatal(err)
	}
	p := process("true")
	for b.Loop() {
		if code, err := r.Exec(b.Context(), id, p, ExecOpts{}); err != nil || code != 0 {
			b.Fatalf("exec: %d, %v", code, err)
		}
	}
}

// TestDefaultSpecInRunc checks what a container of DefaultSpec sees.
func TestDefaultSpecInRunc(t *testing.T) {
	r := newRunc(t)
	id := startSleeper(t, r)
	checks := []struct{ script, want string }{
		// Docker's and containerd's default capability set.
		{"grep CapEff /proc/self/status", "CapEff:\t00000000a80425fb\n"},
		{"echo x > /proc/sys/kernel/domainname && echo writable || echo read-only", "read-only\n"},
		{"[ -c /dev/null ] && [ -c /dev/urandom ] && echo devices", "devices\n"},
	}
	// runc masks only paths the kernel has.
	for _, p := range []string{"/proc/keys", "/proc/timer_list", "/proc/kcore"} {
		if _, err := os.Stat(p); err == nil {
			checks = append(checks, struct{ script, want string }{"cat " + p + " | wc -c", "0\n"})
			break
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err == nil {
		checks = append(checks, struct{ script, want string }{"grep -c ' /sys/fs/cgroup/pids cgroup ro,' /proc/self/mounts", "1\n"})
	}
	for _, tc := range checks {
		var out bytes.Buffer
		if _, err := r.Exec(t.Context(), id, process("sh", "-c", tc.script), ExecOpts{Stdout: &out}); err != nil {
			t.Fatalf("exec %q: %v", tc.script, err)
		}
		if out.String() != tc.want {
			t.Errorf("%q printed %q, want %q", tc.script, out.String(), tc.want)
		}
	}
}
