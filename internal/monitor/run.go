package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/peapod-dev/peapod/internal/crilog"
	"github.com/peapod-dev/peapod/internal/oci"
)

// drainPeriod bounds how long output is still copied once the container's
// process has exited: a process it left behind may hold its stdio open.
const drainPeriod = 500 * time.Millisecond

// reportFD is the pipe on which the monitor says whether the container was
// created: "ok <pid>\n" or "error <message>\n".
const reportFD = 3

// consoleTimeout bounds the wait for the terminal runc sends during create.
const consoleTimeout = 10 * time.Second

// args is the command line Start gives the monitor; Main parses it.
func args(cfg Config, p Params) []string {
	a := []string{
		"--runc", cfg.RuncBinary,
		"--runc-root", cfg.RuncRoot,
		"--id", p.ID,
		"--bundle", p.Bundle,
		"--log", p.LogPath,
		"--exit-file", p.ExitFile,
		"--pid-file", p.PidFile,
	}
	if p.Stdin {
		a = append(a, "--stdin")
	}
	if p.StdinOnce {
		a = append(a, "--stdin-once")
	}
	if p.Tty {
		a = append(a, "--tty")
	}
	return a
}

// Main is the monitor process (cmd/peapod-monitor). It returns the process's
// exit status.
func Main(argv []string) int {
	report := os.NewFile(reportFD, "report")
	var cfg Config
	var p Params
	fs := flag.NewFlagSet("peapod-monitor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.RuncBinary, "runc", "runc", "runc binary")
	fs.StringVar(&cfg.RuncRoot, "runc-root", "", "runc --root")
	fs.StringVar(&p.ID, "id", "", "container ID")
	fs.StringVar(&p.Bundle, "bundle", "", "OCI bundle directory")
	fs.StringVar(&p.LogPath, "log", "", "CRI log file")
	fs.StringVar(&p.ExitFile, "exit-file", "", "file that receives the exit status")
	fs.StringVar(&p.PidFile, "pid-file", "", "file that receives the container's PID")
	fs.BoolVar(&p.Stdin, "stdin", false, "keep the container's stdin open for attach")
	fs.BoolVar(&p.StdinOnce, "stdin-once", false, "close stdin when the first attach session ends")
	fs.BoolVar(&p.Tty, "tty", false, "the container's process has a terminal")
	err := fs.Parse(argv)
	if err == nil && (p.ID == "" || p.Bundle == "" || p.ExitFile == "" || p.PidFile == "" || cfg.RuncRoot == "") {
		err = errors.New("--id, --bundle, --exit-file, --pid-file and --runc-root are required")
	}
	if err != nil {
		fmt.Fprintf(report, "error peapod-monitor: %v\n", err)
		return 2
	}
	m := &monitor{
		runc:  &oci.Runc{Binary: cfg.RuncBinary, Root: cfg.RuncRoot},
		p:     p,
		clock: clock.RealClock{},
		log:   &logFile{path: p.LogPath},
	}
	return m.run(report)
}

type monitor struct {
	runc  *oci.Runc
	p     Params
	clock clock.PassiveClock
	log   *logFile
}

// output is a stream of the container's output.
type output struct {
	r      *os.File
	stream string
	id     byte
}

// stdio is what the monitor holds of the container's stdio.
type stdio struct {
	outputs []output
	// stdin is the container's stdin, nil without Params.Stdin.
	stdin io.WriteCloser
	// resize sizes the container's terminal, nil without Params.Tty.
	resize func(oci.TerminalSize)
}

func (m *monitor) run(report *os.File) int {
	// Caught rather than ignored: an ignored signal stays ignored in the
	// container's process, a caught one is reset by exec.
	quiet := make(chan os.Signal, 1)
	signal.Notify(quiet, syscall.SIGHUP, syscall.SIGPIPE)
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGUSR1)
	// Queued from now on, read only after runc create has been waited for.
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)

	pid, sio, attach, err := m.create()
	if err != nil {
		fmt.Fprintf(report, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	fmt.Fprintf(report, "ok %d\n", pid)
	report.Close()

	go func() {
		for {
			select {
			case <-reopen:
				if err := m.log.reopen(); err != nil {
					fmt.Fprintf(os.Stderr, "peapod-monitor %s: %v\n", m.p.ID, err)
				}
			case <-quiet:
			}
		}
	}()

	var copies sync.WaitGroup
	for _, o := range sio.outputs {
		copies.Add(1)
		go func() {
			defer copies.Done()
			copyOutput(o.r, crilog.NewWriter(m.log, o.stream, m.clock), func(b []byte) { attach.broadcast(o.id, b) })
		}()
	}

	exit := m.wait(pid, sigchld)
	for _, o := range sio.outputs {
		o.r.SetReadDeadline(time.Now().Add(drainPeriod))
	}
	copies.Wait()
	attach.close(drainPeriod)
	if sio.stdin != nil {
		sio.stdin.Close()
	}
	m.log.close()
	if err := writeExit(m.p.ExitFile, exit); err != nil {
		fmt.Fprintf(os.Stderr, "peapod-monitor %s: %v\n", m.p.ID, err)
		return 1
	}
	return 0
}

// create runs `runc create` with pipes or a terminal as the container's
// stdio, opens the log and the attach socket. It returns the container's PID.
func (m *monitor) create() (pid int, sio *stdio, attach *attachServer, retErr error) {
	// The container's init process becomes our child when runc create
	// exits, so that we can wait for it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, nil, nil, fmt.Errorf("becoming a subreaper: %w", err)
	}
	ctx := context.Background()
	var err error
	if m.p.Tty {
		sio, err = m.createWithTerminal(ctx)
	} else {
		sio, err = m.createWithPipes(ctx)
	}
	if err != nil {
		return 0, nil, nil, err
	}
	defer func() {
		if retErr != nil {
			for _, o := range sio.outputs {
				o.r.Close()
			}
			if sio.stdin != nil {
				sio.stdin.Close()
			}
			if err := m.runc.Delete(ctx, m.p.ID, true); err != nil {
				retErr = fmt.Errorf("%w; removing the container: %v", retErr, err)
			}
		}
	}()
	data, err := os.ReadFile(m.p.PidFile)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading runc's pid file: %w", err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading runc's pid file %s: %w", m.p.PidFile, err)
	}
	if err := m.log.reopen(); err != nil {
		return 0, nil, nil, err
	}
	attach, err = listenAttach(m.p.Bundle, sio.stdin, m.p.StdinOnce, sio.resize)
	if err != nil {
		return 0, nil, nil, err
	}
	return pid, sio, attach, nil
}

// createWithPipes runs runc create with pipes as the container's stdout and
// stderr, and stdin when it has one.
func (m *monitor) createWithPipes(ctx context.Context) (_ *stdio, retErr error) {
	var parent, child []*os.File
	defer func() {
		// Only the container holds the child ends now, so EOF means it
		// is gone.
		for _, f := range child {
			f.Close()
		}
		if retErr != nil {
			for _, f := range parent {
				f.Close()
			}
		}
	}()
	pipe := func(containerReads bool) (*os.File, *os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("creating pipe: %w", err)
		}
		if containerReads {
			r, w = w, r
		}
		parent, child = append(parent, r), append(child, w)
		return r, w, nil
	}
	outR, outW, err := pipe(false)
	if err != nil {
		return nil, err
	}
	errR, errW, err := pipe(false)
	if err != nil {
		return nil, err
	}
	o := oci.CreateOpts{PidFile: m.p.PidFile, Stdout: outW, Stderr: errW}
	s := &stdio{outputs: []output{{outR, crilog.Stdout, streamStdout}, {errR, crilog.Stderr, streamStderr}}}
	if m.p.Stdin {
		inW, inR, err := pipe(true)
		if err != nil {
			return nil, err
		}
		o.Stdin, s.stdin = inR, inW
	}
	if err := m.runc.Create(ctx, m.p.ID, m.p.Bundle, o); err != nil {
		return nil, err
	}
	return s, nil
}

// createWithTerminal runs runc create with a terminal for the container's
// process; its output is logged as stdout.
func (m *monitor) createWithTerminal(ctx context.Context) (*stdio, error) {
	cs, err := oci.NewConsoleSocket()
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	if err := m.runc.Create(ctx, m.p.ID, m.p.Bundle, oci.CreateOpts{PidFile: m.p.PidFile, ConsoleSocket: cs.Path()}); err != nil {
		return nil, err
	}
	master, err := cs.ReceiveMaster(consoleTimeout)
	if err != nil {
		if derr := m.runc.Delete(ctx, m.p.ID, true); derr != nil {
			return nil, fmt.Errorf("%w; removing the container: %v", err, derr)
		}
		return nil, err
	}
	s := &stdio{
		outputs: []output{{master, crilog.Stdout, streamStdout}},
		resize:  func(size oci.TerminalSize) { setWinsize(master, size) },
	}
	if m.p.Stdin {
		// A terminal cannot be half closed: StdinOnce leaves it open.
		s.stdin = nopCloser{master}
	}
	return s, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// setWinsize sets the terminal's size; the kernel signals SIGWINCH to the
// process group in its foreground.
func setWinsize(master *os.File, size oci.TerminalSize) {
	raw, err := master.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
	})
}

// wait reaps children until the container's process has exited and returns
// how it ended. Other processes reparented to the monitor are reaped too.
// It waits for SIGCHLD rather than in wait4, which would hold a thread.
func (m *monitor) wait(pid int, sigchld <-chan os.Signal) *Exit {
	for {
		if e := m.reap(pid); e != nil {
			return e
		}
		<-sigchld
	}
}

// reap reaps the children that have exited and returns the container's exit
// once its process is among them.
func (m *monitor) reap(pid int) *Exit {
	var exit *Exit
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if exit == nil {
				// No child is left, so the container's process cannot
				// be waited for; record that its status is unknown.
				fmt.Fprintf(os.Stderr, "peapod-monitor %s: waiting for %d: %v\n", m.p.ID, pid, err)
				exit = &Exit{ExitCode: 255, FinishedAt: m.clock.Now()}
			}
			return exit
		}
		if got <= 0 {
			return exit
		}
		if got == pid {
			exit = &Exit{ExitCode: ws.ExitStatus(), FinishedAt: m.clock.Now()}
			if ws.Signaled() {
				exit.ExitCode = 128 + int(ws.Signal())
				exit.Signal = unix.SignalName(ws.Signal())
			}
		}
	}
}

// copyOutput copies r to the log w and to attached clients until EOF or the
// read deadline. Errors writing the log do not stop the copy, or the
// container would block on a full pipe.
func copyOutput(r *os.File, w io.WriteCloser, attached func([]byte)) {
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			attached(buf[:n])
		}
		if err != nil {
			break
		}
	}
	_ = w.Close()
	r.Close()
}

// writeExit writes the exit file by rename, so readers never see half of it.
func writeExit(path string, e *Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding exit status: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing exit file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing exit file: %w", err)
	}
	return nil
}

// logFile is the container's log file, shared by the stdout and stderr
// writers and reopened on SIGUSR1. Without a path it discards.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return len(p), nil
	}
	return l.f.Write(p)
}

// reopen opens the path anew, so that a file moved away by log rotation is
// no longer written.
func (l *logFile) reopen() error {
	if l.path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	// Locked while the new file is created: once it exists nothing more
	// goes to the old one, which a reader following the log relies on.
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	return nil
}

func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
