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

// args is the command line Start gives the monitor; Main parses it.
func args(cfg Config, p Params) []string {
	return []string{
		"--runc", cfg.RuncBinary,
		"--runc-root", cfg.RuncRoot,
		"--id", p.ID,
		"--bundle", p.Bundle,
		"--log", p.LogPath,
		"--exit-file", p.ExitFile,
		"--pid-file", p.PidFile,
	}
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

func (m *monitor) run(report *os.File) int {
	// Caught rather than ignored: an ignored signal stays ignored in the
	// container's process, a caught one is reset by exec.
	quiet := make(chan os.Signal, 1)
	signal.Notify(quiet, syscall.SIGHUP, syscall.SIGPIPE)
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGUSR1)

	pid, stdout, stderr, err := m.create()
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
	for _, s := range []struct {
		r      *os.File
		stream string
	}{{stdout, crilog.Stdout}, {stderr, crilog.Stderr}} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			copyLog(s.r, crilog.NewWriter(m.log, s.stream, m.clock))
		}()
	}

	exit := m.wait(pid)
	stdout.SetReadDeadline(time.Now().Add(drainPeriod))
	stderr.SetReadDeadline(time.Now().Add(drainPeriod))
	copies.Wait()
	m.log.close()
	if err := writeExit(m.p.ExitFile, exit); err != nil {
		fmt.Fprintf(os.Stderr, "peapod-monitor %s: %v\n", m.p.ID, err)
		return 1
	}
	return 0
}

// create runs `runc create` with pipes for the container's stdout and stderr
// and opens the log. It returns the container's PID and the read ends.
func (m *monitor) create() (pid int, stdout, stderr *os.File, retErr error) {
	// The container's init process becomes our child when runc create
	// exits, so that we can wait for it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, nil, nil, fmt.Errorf("becoming a subreaper: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, nil, nil, fmt.Errorf("creating stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return 0, nil, nil, fmt.Errorf("creating stderr pipe: %w", err)
	}
	defer func() {
		if retErr != nil {
			outR.Close()
			errR.Close()
		}
	}()
	ctx := context.Background()
	err = m.runc.Create(ctx, m.p.ID, m.p.Bundle, oci.CreateOpts{PidFile: m.p.PidFile, Stdout: outW, Stderr: errW})
	// Only the container holds the write ends now, so EOF means it is gone.
	outW.Close()
	errW.Close()
	if err != nil {
		return 0, nil, nil, err
	}
	defer func() {
		if retErr != nil {
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
	return pid, outR, errR, nil
}

// wait reaps children until the container's process has exited and returns
// how it ended. Other processes reparented to the monitor are reaped too.
func (m *monitor) wait(pid int) *Exit {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// No child is left, so the container's process cannot be
			// waited for; record that its status is unknown.
			fmt.Fprintf(os.Stderr, "peapod-monitor %s: waiting for %d: %v\n", m.p.ID, pid, err)
			return &Exit{ExitCode: 255, FinishedAt: m.clock.Now()}
		}
		if got != pid {
			continue
		}
		e := &Exit{ExitCode: ws.ExitStatus(), FinishedAt: m.clock.Now()}
		if ws.Signaled() {
			e.ExitCode = 128 + int(ws.Signal())
			e.Signal = unix.SignalName(ws.Signal())
		}
		reapAll()
		return e
	}
}

// reapAll reaps the children that have exited, without waiting.
func reapAll() {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || got <= 0 {
			return
		}
	}
}

// copyLog copies r to w until EOF or the read deadline; errors writing
// the log do not stop the copy, or the container would block on a full pipe.
func copyLog(r *os.File, w io.WriteCloser) {
	buf := make([]byte, 8192)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
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
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
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
