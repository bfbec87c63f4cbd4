package monitor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/crilog"
	"github.com/peapod-dev/peapod/internal/oci"
)

const runcBinary = "/usr/sbin/runc"

// monitorBinary is the peapod-monitor built for the tests by TestMain.
var monitorBinary string

const helperEnv = "PEAPOD_MONITOR_TEST_HELPER"

func TestMain(m *testing.M) {
	// As a helper process, start a monitor like the daemon does, print its
	// handle and exit, leaving the monitor behind.
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec))
	}
	dir, err := os.MkdirTemp("", "peapod-monitor-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	monitorBinary = filepath.Join(dir, "peapod-monitor")
	build := exec.Command("go", "build", "-o", monitorBinary, "github.com/peapod-dev/peapod/cmd/peapod-monitor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building peapod-monitor: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type helperSpec struct {
	Config Config
	Params Params
}

func helperMain(spec string) int {
	var s helperSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h, err := Start(context.Background(), s.Config, s.Params)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(h); err != nil {
		return 1
	}
	return 0
}

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

// env is one container's files and the monitor configuration for it.
type env struct {
	cfg  Config
	p    Params
	runc *oci.Runc
}

// newEnv makes a bundle running args in a busybox rootfs, with the host
// directory ctl mounted at /ctl, and removes the container at the end.
func newEnv(t testing.TB, args ...string) *env {
	t.Helper()
	requireRunc(t)
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := "peapod-monitor-test-" + hex.EncodeToString(b)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
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
	for _, name := range []string{"sh", "sleep", "echo", "cat", "test", "[", "stty"} {
		if err := os.Symlink("busybox", filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctl := filepath.Join(dir, "ctl")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	s := oci.DefaultSpec()
	s.Process.Args = args
	s.Process.Env = []string{"PATH=/bin"}
	s.Linux.CgroupsPath = "/" + id
	oci.AddMount(s, specs.Mount{Destination: "/ctl", Type: "bind", Source: ctl, Options: []string{"rbind", "ro"}})
	if err := oci.WriteBundle(bundle, s); err != nil {
		t.Fatal(err)
	}
	e := &env{
		cfg: Config{Binary: monitorBinary, RuncBinary: runcBinary, RuncRoot: filepath.Join(dir, "runc")},
		p: Params{
			ID:       id,
			Bundle:   bundle,
			LogPath:  filepath.Join(dir, "logs", "c", "0.log"),
			ExitFile: filepath.Join(dir, "exit"),
			PidFile:  filepath.Join(dir, "pid"),
		},
	}
	e.runc = &oci.Runc{Binary: runcBinary, Root: e.cfg.RuncRoot}
	t.Cleanup(func() {
		if err := e.runc.Delete(context.Background(), id, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return e
}

// setTerminal gives the container's process a terminal.
func (e *env) setTerminal(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.p.Bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = true
	if err := oci.WriteBundle(e.p.Bundle, &s); err != nil {
		t.Fatal(err)
	}
	e.p.Tty = true
}

func (e *env) ctl(name string) string { return filepath.Join(filepath.Dir(e.p.Bundle), "ctl", name) }

// start starts the monitor and the container.
func (e *env) start(t testing.TB) *Handle {
	t.Helper()
	h, err := Start(context.Background(), e.cfg, e.p)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// Whatever happens, the monitor must not outlive the test, not even as
	// a zombie: it exits with the container, and Start's goroutine reaps it.
	// Killing it first would orphan the container's process.
	t.Cleanup(func() {
		if err := e.runc.Delete(context.Background(), e.p.ID, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		waitReaped(h.PID)
	})
	if !Alive(h.PID, h.StartTime) || h.ContainerPID <= 0 {
		t.Fatalf("handle %+v: monitor not alive or no container pid", h)
	}
	if err := e.runc.Start(context.Background(), e.p.ID); err != nil {
		t.Fatalf("runc start: %v", err)
	}
	return h
}

// poll calls f until it returns true or the test's context ends.
func poll(t *testing.T, what string, f func() bool) {
	t.Helper()
	for !f() {
		select {
		case <-t.Context().Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (e *env) waitExit(t *testing.T) *Exit {
	t.Helper()
	var exit *Exit
	poll(t, "the exit file", func() bool {
		var err error
		exit, err = ReadExit(e.p.ExitFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ReadExit: %v", err)
		}
		return err == nil
	})
	return exit
}

func waitGone(t *testing.T, h *Handle) {
	t.Helper()
	poll(t, "the monitor to exit", func() bool { return !Alive(h.PID, h.StartTime) })
}

// waitReaped waits until the process is gone from /proc, i.e. reaped.
func waitReaped(pid int) {
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readLogs(t *testing.T, path string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := crilog.ReadLogs(context.Background(), path, crilog.ReadOptions{Tail: -1}, &stdout, &stderr); err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	return stdout.String(), stderr.String()
}

func TestExitCodeAndLogs(t *testing.T) {
	e := newEnv(t, "sh", "-c", "echo out; echo err >&2; echo -n partial; exit 3")
	h := e.start(t)
	exit := e.waitExit(t)
	if exit.ExitCode != 3 || exit.Signal != "" || exit.FinishedAt.IsZero() {
		t.Fatalf("exit %+v, want code 3", exit)
	}
	waitGone(t, h)

	stdout, stderr := readLogs(t, e.p.LogPath)
	if stdout != "out\npartial" || stderr != "err\n" {
		t.Fatalf("logs: stdout %q, stderr %q", stdout, stderr)
	}
	raw, err := os.ReadFile(e.p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	record := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [PF] .*$`)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("log has %d records, want 3:\n%s", len(lines), raw)
	}
	for _, l := range lines {
		if !record.MatchString(l) {
			t.Errorf("not a CRI log record: %q", l)
		}
	}
	pid, err := os.ReadFile(e.p.PidFile)
	if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(h.ContainerPID) {
		t.Fatalf("pid file %q (%v), handle %+v", pid, err, h)
	}
}

func TestKilledBySignal(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	h := e.start(t)
	if err := e.runc.Kill(context.Background(), e.p.ID, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	exit := e.waitExit(t)
	if exit.ExitCode != 137 || exit.Signal != "SIGKILL" {
		t.Fatalf("exit %+v, want 137 SIGKILL", exit)
	}
	waitGone(t, h)
}

// TestOutlivesStarter starts the monitor from a process that exits at once,
// as the daemon may; the container starts only after that process is gone.
func TestOutlivesStarter(t *testing.T) {
	e := newEnv(t, "sh", "-c", "echo one; echo two >&2; exit 5")
	spec, err := json.Marshal(helperSpec{Config: e.cfg, Params: e.p})
	if err != nil {
		t.Fatal(err)
	}
	// The orphaned monitor is reparented to this process, which reaps it
	// below, rather than to init, which may not reap here.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	helper := exec.Command(os.Args[0])
	helper.Env = append(os.Environ(), helperEnv+"="+string(spec))
	var stderr bytes.Buffer
	helper.Stderr = &stderr
	out, err := helper.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, stderr.String())
	}
	var h Handle
	if err := json.Unmarshal(out, &h); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	t.Cleanup(func() {
		if Alive(h.PID, h.StartTime) {
			syscall.Kill(h.PID, syscall.SIGKILL)
		}
	})
	if !Alive(h.PID, h.StartTime) {
		t.Fatalf("monitor %+v died with the process that started it", h)
	}
	if err := e.runc.Start(context.Background(), e.p.ID); err != nil {
		t.Fatal(err)
	}
	exit := e.waitExit(t)
	if exit.ExitCode != 5 {
		t.Fatalf("exit %+v, want code 5", exit)
	}
	if stdout, stderr := readLogs(t, e.p.LogPath); stdout != "one\n" || stderr != "two\n" {
		t.Fatalf("logs: stdout %q, stderr %q", stdout, stderr)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(h.PID, &ws, 0, nil); err != nil {
		t.Fatalf("reaping the monitor: %v", err)
	}
	if ws.ExitStatus() != 0 {
		t.Fatalf("monitor exit status %v", ws)
	}
}

func TestCreateFailure(t *testing.T) {
	e := newEnv(t, "true")
	if err := os.Remove(filepath.Join(e.p.Bundle, "config.json")); err != nil {
		t.Fatal(err)
	}
	h, err := Start(context.Background(), e.cfg, e.p)
	if err == nil {
		t.Fatalf("Start with a bad bundle returned %+v", h)
	}
	if !strings.Contains(err.Error(), "config.json") || !strings.Contains(err.Error(), e.p.ID) {
		t.Fatalf("Start error %q does not carry runc's message and the container", err)
	}
	if _, err := e.runc.State(context.Background(), e.p.ID); !errors.Is(err, oci.ErrNotExist) {
		t.Fatalf("runc state after a failed start: %v", err)
	}
	for _, f := range []string{e.p.LogPath, e.p.ExitFile, e.p.PidFile} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", f, err)
		}
	}
	// The monitor has been reaped: no child of ours is left, zombie or not.
	var ws syscall.WaitStatus
	if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Fatalf("a child is left: pid %d, %v", pid, err)
	}
}

func TestBadArguments(t *testing.T) {
	requireRunc(t)
	_, err := Start(context.Background(), Config{Binary: monitorBinary, RuncBinary: runcBinary}, Params{ID: "x"})
	if err == nil || !strings.Contains(err.Error(), "required") {
		t.Fatalf("Start without paths: %v", err)
	}
	_, err = Start(context.Background(), Config{Binary: filepath.Join(t.TempDir(), "none")}, Params{ID: "x"})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Start with a missing binary: %v", err)
	}
}

func TestReopenLog(t *testing.T) {
	e := newEnv(t, "sh", "-c", "echo before; until [ -e /ctl/go ]; do sleep 0.01; done; echo after")
	h := e.start(t)
	poll(t, "the first line", func() bool {
		data, _ := os.ReadFile(e.p.LogPath)
		return strings.Contains(string(data), "before")
	})
	rotated := e.p.LogPath + ".1"
	if err := os.Rename(e.p.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := ReopenLog(t.Context(), h.PID, h.StartTime, e.p.LogPath); err != nil {
		t.Fatalf("ReopenLog: %v", err)
	}
	if err := os.WriteFile(e.ctl("go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if exit := e.waitExit(t); exit.ExitCode != 0 {
		t.Fatalf("exit %+v", exit)
	}
	if stdout, _ := readLogs(t, rotated); stdout != "before\n" {
		t.Errorf("rotated log: %q", stdout)
	}
	if stdout, _ := readLogs(t, e.p.LogPath); stdout != "after\n" {
		t.Errorf("reopened log: %q", stdout)
	}
	waitGone(t, h)
	if err := ReopenLog(t.Context(), h.PID, h.StartTime, e.p.LogPath); !errors.Is(err, ErrNotAlive) {
		t.Fatalf("ReopenLog of a gone monitor: %v", err)
	}
}

func TestNoLogPath(t *testing.T) {
	e := newEnv(t, "sh", "-c", "echo discarded; exit 0")
	e.p.LogPath = ""
	h := e.start(t)
	if exit := e.waitExit(t); exit.ExitCode != 0 {
		t.Fatalf("exit %+v", exit)
	}
	waitGone(t, h)
}

func TestAlive(t *testing.T) {
	st, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !Alive(os.Getpid(), st) {
		t.Error("this process is not alive")
	}
	if Alive(os.Getpid(), st+1) {
		t.Error("a different start time is alive")
	}
	if Alive(1<<22+1, st) {
		t.Error("a pid above pid_max is alive")
	}
}

func TestReadExit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exit")
	if _, err := ReadExit(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadExit of a missing file: %v", err)
	}
	want := &Exit{ExitCode: 137, Signal: "SIGKILL", FinishedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	if err := writeExit(path, want); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if string(raw) != `{"exitCode":137,"signal":"SIGKILL","finishedAt":"2026-01-02T03:04:05.000000006Z"}` {
		t.Fatalf("exit file %s", raw)
	}
	got, err := ReadExit(path)
	if err != nil || *got != *want {
		t.Fatalf("ReadExit = %+v, %v", got, err)
	}
}

// TestStartCancel uses a runc whose create never finishes: cancelling Start
// kills it together with the monitor.
func TestStartCancel(t *testing.T) {
	e := newEnv(t, "true")
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "runc.pid")
	fakeRunc := filepath.Join(dir, "runc")
	script := "#!/bin/sh\ncase \" $* \" in *\" create \"*) echo $$ > " + pidFile + "; exec sleep 1000;; esac\n"
	if err := os.WriteFile(fakeRunc, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfg.RuncBinary = fakeRunc
	// The fake runc, orphaned when the monitor dies, comes to this process.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := Start(ctx, e.cfg, e.p)
		errc <- err
	}()
	var runcPID int
	poll(t, "the fake runc to run", func() bool {
		data, err := os.ReadFile(pidFile)
		if err != nil || !bytes.HasSuffix(data, []byte("\n")) {
			return false
		}
		runcPID, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Start: %v", err)
	}
	// Either the monitor reaped it before it died itself, or it is ours now.
	var ws unix.WaitStatus
	_, err := unix.Wait4(runcPID, &ws, 0, nil)
	switch {
	case errors.Is(err, unix.ECHILD):
		if _, err := os.Stat("/proc/" + strconv.Itoa(runcPID)); !os.IsNotExist(err) {
			t.Fatalf("fake runc %d still exists", runcPID)
		}
	case err != nil:
		t.Fatalf("reaping the fake runc: %v", err)
	case !ws.Signaled() || ws.Signal() != unix.SIGKILL:
		t.Fatalf("fake runc ended with %v, want killed", ws)
	}
}

// TestFollowLogs follows the log as `kubectl logs -f` does while the
// container writes it, until the monitor is gone.
func TestFollowLogs(t *testing.T) {
	e := newEnv(t, "sh", "-c", "for i in 1 2 3; do echo line$i; until [ -e /ctl/$i ]; do sleep 0.01; done; done; echo end >&2")
	h := e.start(t)
	var stdout, stderr bytes.Buffer
	out := &notify{w: &stdout, wrote: make(chan struct{}, 10)}
	done := make(chan error, 1)
	go func() {
		done <- crilog.ReadLogs(t.Context(), e.p.LogPath, crilog.ReadOptions{
			Follow: true, Tail: -1, Running: func() bool { return Alive(h.PID, h.StartTime) },
		}, out, &stderr)
	}()
	for i := 1; i <= 3; i++ {
		want := ""
		for j := 1; j <= i; j++ {
			want += "line" + strconv.Itoa(j) + "\n"
		}
		for out.String() != want {
			select {
			case <-out.wrote:
			case <-t.Context().Done():
				t.Fatalf("followed %q, want %q", out.String(), want)
			}
		}
		if err := os.WriteFile(e.ctl(strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	if stderr.String() != "end\n" {
		t.Fatalf("followed stderr %q", stderr.String())
	}
}

// notify is a writer that signals each write.
type notify struct {
	mu    sync.Mutex
	w     *bytes.Buffer
	wrote chan struct{}
}

func (n *notify) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.w.Write(p)
	select {
	case n.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (n *notify) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.w.String()
}
