package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// pauseBin is the peapod-pause binary built once for all tests by TestMain.
var pauseBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "peapod-pause-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create build dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pauseBin = filepath.Join(dir, "peapod-pause")
	// Built as the project builds it (go build ./cmd/...), so the tests see
	// the same linking as production.
	out, err := exec.Command("go", "build", "-o", pauseBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build peapod-pause: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// requireNamespaces checks what tests that run pause in a new PID namespace
// need: root, and busybox to spawn processes there.
func requireNamespaces(tb testing.TB) {
	tb.Helper()
	testimage.RequireRoot(tb)
	testimage.RequireBinary(tb, "/bin/busybox", "busybox-static")
}

// pause is a running peapod-pause.
type pause struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // from Wait, valid once done is closed
}

// startPause starts peapod-pause, as PID 1 of a new PID namespace when newPID
// is set. It is killed and waited for when the test ends.
func startPause(tb testing.TB, newPID bool, args ...string) *pause {
	tb.Helper()
	p := &pause{cmd: exec.Command(pauseBin, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	// Pdeathsig also ends pause if the test binary dies before its cleanup runs
	// (a test timeout panics without running cleanups).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if newPID {
		p.cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", pauseBin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		// Pause is PID 1 of its namespace: killing it kills every process left there.
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// syncBuffer is a bytes.Buffer that the test may read while exec copies into it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wait returns pause's exit error, failing the test if it does not exit in time.
func (p *pause) wait(tb testing.TB) error {
	tb.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		tb.Fatalf("peapod-pause did not exit; stderr: %q", p.stderr.String())
		return nil
	}
}

// runInPauseNS runs script with busybox sh inside pause's PID namespace (the
// shell's parent stays the test, so whatever it leaves behind is orphaned to
// pause) and waits for the shell to exit. files become the shell's fd 3, 4, ….
func runInPauseNS(tb testing.TB, pausePID int, script string, files ...*os.File) {
	tb.Helper()
	dir := tb.TempDir()
	errc := make(chan error, 1)
	go func() {
		// setns(CLONE_NEWPID) changes only the namespace this thread's future
		// children are born in. The thread goes back to the test's namespace
		// before it is unlocked; if that fails it stays locked, and Go
		// discards it when this goroutine returns.
		runtime.LockOSThread()
		errc <- func() error {
			own, err := os.Open("/proc/self/ns/pid")
			if err != nil {
				return fmt.Errorf("open the test's pid namespace: %w", err)
			}
			defer own.Close()
			ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/pid", pausePID))
			if err != nil {
				return fmt.Errorf("open pause's pid namespace: %w", err)
			}
			defer ns.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWPID); err != nil {
				return fmt.Errorf("join pause's pid namespace: %w", err)
			}
			defer func() {
				if unix.Setns(int(own.Fd()), unix.CLONE_NEWPID) == nil {
					runtime.UnlockOSThread()
				}
			}()
			// Output goes to a file, not a pipe: the orphans inherit it, and
			// exec would wait for a pipe until the last of them exits.
			out, err := os.CreateTemp(dir, "out")
			if err != nil {
				return err
			}
			defer out.Close()
			cmd := exec.Command("/bin/busybox", "sh", "-c", script)
			cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = out, out, files
			if err := cmd.Run(); err != nil {
				msg, _ := os.ReadFile(out.Name())
				return fmt.Errorf("run %q in pause's pid namespace: %w: %s", script, err, msg)
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
}

// children returns the state letter (R, S, Z, …) of every child of pid, by pid.
// It scans /proc because /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN.
func children(tb testing.TB, pid int) map[int]string {
	tb.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatalf("list processes: %v", err)
	}
	kids := map[int]string{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the parenthesised command: state, ppid, ….
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			tb.Fatalf("parse /proc/%d/stat: %q", child, stat)
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			tb.Fatalf("parse /proc/%d/stat: %q", child, stat)
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
			kids[child] = fields[0]
		}
	}
	return kids
}

// pollChildren waits until cond holds for pid's children or the bound passes,
// and returns the last children seen. The bound is a liveness limit, not a
// speed requirement.
func pollChildren(tb testing.TB, pid int, bound time.Duration, cond func(map[int]string) bool) (map[int]string, bool) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for {
		kids := children(tb, pid)
		if cond(kids) {
			return kids, true
		}
		if time.Now().After(deadline) {
			return kids, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReady returns once pause handles signals: an orphan that exits is
// reaped only after pause has set up its signal handling (before that, Go
// ignores SIGCHLD and SIGTERM would kill pause with a signal status).
func waitReady(tb testing.TB, p *pause) {
	tb.Helper()
	runInPauseNS(tb, p.cmd.Process.Pid, "/bin/busybox true &")
	kids, ok := pollChildren(tb, p.cmd.Process.Pid, 10*time.Second, func(k map[int]string) bool { return len(k) == 0 })
	if !ok {
		tb.Fatalf("peapod-pause did not reap its first orphan: children %v, stderr %q", kids, p.stderr.String())
	}
}

func TestReapsOrphans(t *testing.T) {
	requireNamespaces(t)
	const orphans = 150
	p := startPause(t, true)
	pid := p.cmd.Process.Pid

	// Every orphan blocks reading fd 3 until the test closes the pipe's write
	// end, so they all exit together and their SIGCHLDs coalesce.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do (/bin/busybox cat <&3 >/dev/null &); i=$((i+1)); done`, orphans)
	runInPauseNS(t, pid, script, r)
	r.Close()

	kids, ok := pollChildren(t, pid, 10*time.Second, func(k map[int]string) bool { return len(k) == orphans })
	if !ok {
		t.Fatalf("want %d orphans reparented to pause, have %d: %v", orphans, len(kids), kids)
	}
	w.Close()
	kids, ok = pollChildren(t, pid, time.Second, func(k map[int]string) bool { return len(k) == 0 })
	if !ok {
		zombies := 0
		for _, state := range kids {
			if state == "Z" {
				zombies++
			}
		}
		t.Fatalf("a second after the orphans were told to exit, pause still has %d children (%d zombies): %v", len(kids), zombies, kids)
	}
	select {
	case <-p.done:
		t.Fatalf("peapod-pause exited: %v, stderr %q", p.err, p.stderr.String())
	default:
	}
	if s := p.stderr.String(); s != "" {
		t.Errorf("peapod-pause as PID 1 wrote to stderr: %q", s)
	}
}

func TestShutdownSignals(t *testing.T) {
	requireNamespaces(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		line string
	}{
		{syscall.SIGTERM, "Shutting down, got signal: Terminated\n"},
		{syscall.SIGINT, "Shutting down, got signal: Interrupt\n"},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			p := startPause(t, true)
			waitReady(t, p)
			if err := p.cmd.Process.Signal(tc.sig); err != nil {
				t.Fatalf("signal pause: %v", err)
			}
			if err := p.wait(t); err != nil {
				t.Fatalf("want exit status 0 after %v, got %v; stderr %q", tc.sig, err, p.stderr.String())
			}
			if got := p.stderr.String(); got != tc.line {
				t.Errorf("stderr = %q, want %q", got, tc.line)
			}
		})
	}
}

func TestIgnoresOtherSignalsAsPID1(t *testing.T) {
	requireNamespaces(t)
	p := startPause(t, true)
	waitReady(t, p)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP,
		syscall.SIGABRT, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGPIPE, syscall.SIGXCPU, syscall.SIGPWR} {
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatalf("send %v: %v", sig, err)
		}
	}
	// Pending signals are delivered lowest number first, so once pause has
	// reaped another orphan (SIGCHLD is 17) it has handled all those above
	// except SIGXCPU and SIGPWR, which Go ignores anyway.
	waitReady(t, p)
	select {
	case <-p.done:
		t.Fatalf("peapod-pause died of a signal pause.c ignores as PID 1: %v, stderr %q", p.err, p.stderr.String())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("want exit status 0 after SIGTERM, got %v; stderr %q", err, p.stderr.String())
	}
	if got, want := p.stderr.String(), "Shutting down, got signal: Terminated\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestWarnsWhenNotPID1(t *testing.T) {
	cmd := exec.Command(pauseBin)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("read pause's stderr: %v", err)
	}
	if want := "Warning: pause should be the first process\n"; line != want {
		t.Errorf("stderr = %q, want %q", line, want)
	}
	// It must keep running after the warning: only our SIGKILL ends it.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill pause: %v", err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("want pause still running until killed, it ended with %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(pauseBin, "-v").Output()
	if err != nil {
		t.Fatalf("peapod-pause -v: %v", err)
	}
	if !strings.HasPrefix(string(out), "peapod-pause ") || !strings.HasSuffix(string(out), "\n") || len(out) <= len("peapod-pause \n") {
		t.Errorf("peapod-pause -v printed %q, want \"peapod-pause <version>\\n\"", out)
	}
}

func TestUnknownArgument(t *testing.T) {
	err := exec.Command(pauseBin, "--bogus").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("want exit status 2 for an unknown argument, got %v", err)
	}
}

// TestDependencies keeps out packages that would make pause dynamically
// linked (cgo) or bigger for no use.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := map[string]bool{"runtime/cgo": true, "net": true, "os/user": true, "fmt": true, "flag": true, "log/slog": true, "runtime/debug": true}
	for _, dep := range strings.Fields(string(out)) {
		if forbidden[dep] {
			t.Errorf("peapod-pause links %s", dep)
		}
	}
}

func TestStaticallyLinked(t *testing.T) {
	f, err := elf.Open(pauseBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("peapod-pause has a %v program header: it is dynamically linked", p.Type)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("peapod-pause needs shared libraries %v", libs)
	}
}

// BenchmarkPauseMemory reports the memory of an idle peapod-pause that is PID 1
// of its own PID namespace, as in a pod: rss-KiB, pss-KiB and private-KiB
// (Private_Clean + Private_Dirty) of a lone pause, whose binary's mapped pages
// count as private because no other process maps them; anon-KiB, its own
// memory; private-2pods-KiB, its private memory once a second pause shares the
// binary's pages; and pss-20pods-KiB, the mean proportional set size of 20
// pauses running together (how the runtime's per-pod overhead is counted).
func BenchmarkPauseMemory(b *testing.B) {
	requireNamespaces(b)
	const pods = 20
	var rss, pss, private, anon, private2, pss20 float64
	for b.Loop() {
		running := make([]*pause, pods)
		for i := range running {
			running[i] = startPause(b, true)
			waitReady(b, running[i])
			switch i {
			case 0:
				m := smapsRollup(b, running[0].cmd.Process.Pid)
				rss += float64(m["Rss"])
				pss += float64(m["Pss"])
				private += float64(m["Private_Clean"] + m["Private_Dirty"])
				anon += float64(m["Anonymous"])
			case 1:
				m := smapsRollup(b, running[0].cmd.Process.Pid)
				private2 += float64(m["Private_Clean"] + m["Private_Dirty"])
			}
		}
		for _, p := range running {
			pss20 += float64(smapsRollup(b, p.cmd.Process.Pid)["Pss"]) / pods
		}
		for _, p := range running {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	n := float64(b.N)
	b.ReportMetric(rss/n, "rss-KiB")
	b.ReportMetric(pss/n, "pss-KiB")
	b.ReportMetric(private/n, "private-KiB")
	b.ReportMetric(anon/n, "anon-KiB")
	b.ReportMetric(private2/n, "private-2pods-KiB")
	b.ReportMetric(pss20/n, "pss-20pods-KiB")
}

// smapsRollup returns the kB fields of /proc/PID/smaps_rollup.
func smapsRollup(tb testing.TB, pid int) map[string]int {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		tb.Fatalf("read memory of pause: %v", err)
	}
	m := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "kB" {
			v, err := strconv.Atoi(f[1])
			if err != nil {
				tb.Fatalf("parse %q in smaps_rollup: %v", line, err)
			}
			m[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	return m
}
