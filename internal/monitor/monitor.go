// Package monitor starts and finds peapod-monitor, the per-container process
// that holds a container's stdio and records its exit code, so that both
// survive a restart or crash of the daemon (CRI-O's conmon, containerd's shim).
//
// The daemon starts the monitor as a child in a new session and reaps it in a
// goroutine when it exits. A double fork would only hand the monitor to init
// sooner; it outlives the daemon either way (a dead parent's children are
// reparented), and without a fork in between the daemon learns the monitor's
// PID directly and nothing is left as a zombie while the daemon runs. After a
// daemon restart the monitor is identified by PID and start time (Alive)
// before it is signalled, so a reused PID is never mistaken for it.
package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peapod-dev/peapod/internal/oci"
)

// cleanupTimeout bounds removing what a failed start left.
const cleanupTimeout = 10 * time.Second

var (
	// ErrNotAlive is returned when the monitor to signal is gone.
	ErrNotAlive = errors.New("monitor is not running")
	// ErrNoReport is returned when the monitor ended without saying whether
	// the container was created.
	ErrNoReport = errors.New("monitor exited without a report")
)

// Config says which binaries the monitor runs.
type Config struct {
	// Binary is the peapod-monitor executable.
	Binary string
	// RuncBinary and RuncRoot are runc's executable and --root.
	RuncBinary string
	RuncRoot   string
}

// Params describe one container.
type Params struct {
	ID     string
	Bundle string
	// LogPath is the CRI log file; "" discards the container's output.
	LogPath  string
	ExitFile string
	PidFile  string
	// Stdin keeps the container's stdin open for Attach; StdinOnce closes
	// it when the first attach session ends (not with Tty).
	Stdin     bool
	StdinOnce bool
	// Tty gives the container's process a terminal (the spec's
	// process.terminal must be true); its output is logged as stdout.
	Tty bool
}

// Handle identifies a started monitor and its container.
type Handle struct {
	PID          int
	StartTime    uint64
	ContainerPID int
}

// Exit is what the monitor records when the container's process ends.
type Exit struct {
	// ExitCode is the process's exit status, or 128+N when signal N
	// killed it.
	ExitCode int `json:"exitCode"`
	// Signal names the signal that killed the process, e.g. "SIGKILL".
	Signal     string    `json:"signal"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Start starts a monitor that creates the container with `runc create` and
// returns once it is created (runc start runs its process). On failure
// the error carries runc's message and neither the monitor nor the container
// is left.
func Start(ctx context.Context, cfg Config, p Params) (*Handle, error) {
	report, reportW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting monitor for %s: %w", p.ID, err)
	}
	defer report.Close()

	cmd := exec.Command(cfg.Binary, args(cfg, p)...)
	// Stdio is /dev/null: the monitor must not hold the daemon's terminal
	// or pipes, and gets no SIGHUP from a session it is not part of.
	cmd.Dir = "/"
	// One P is all the monitor needs; each extra one costs it memory.
	cmd.Env = append(oci.Environ(), "GOMAXPROCS=1")
	cmd.ExtraFiles = []*os.File{reportW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return nil, fmt.Errorf("starting monitor for %s: %w", p.ID, err)
	}
	h := &Handle{PID: cmd.Process.Pid}
	// Read before anyone reaps it: the process exists until then.
	h.StartTime, err = startTime(h.PID)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err != nil {
		killGroup(h.PID)
		<-exited
		return nil, fmt.Errorf("starting monitor for %s: %w", p.ID, err)
	}

	// abandon ends a monitor that did not report success, and removes what
	// its runc create may have made.
	abandon := func() {
		killGroup(h.PID)
		<-exited
		r := &oci.Runc{Binary: cfg.RuncBinary, Root: cfg.RuncRoot}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = r.Delete(dctx, p.ID, true)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(report).ReadString('\n')
		line <- s
	}()
	var msg string
	select {
	case msg = <-line:
	case <-ctx.Done():
		// The monitor's session holds runc create too.
		abandon()
		return nil, fmt.Errorf("starting monitor for %s: %w", p.ID, ctx.Err())
	}

	kind, rest, _ := strings.Cut(strings.TrimSuffix(msg, "\n"), " ")
	switch kind {
	case "ok":
		pid, err := strconv.Atoi(rest)
		if err != nil {
			abandon()
			return nil, fmt.Errorf("starting monitor for %s: bad report %q", p.ID, msg)
		}
		h.ContainerPID = pid
		return h, nil
	case "error":
		// The monitor has removed whatever it created.
		<-exited
		return nil, fmt.Errorf("creating container %s: %s", p.ID, rest)
	default:
		abandon()
		return nil, fmt.Errorf("starting monitor for %s: %w", p.ID, ErrNoReport)
	}
}

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// ReadExit reads the exit file the monitor writes; the error wraps
// os.ErrNotExist while the container runs.
func ReadExit(path string) (*Exit, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading exit file: %w", err)
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("reading exit file %s: %w", path, err)
	}
	return &e, nil
}

// Alive reports whether process pid exists, is not a zombie and started at
// startTime, i.e. it is the monitor that was started and not a process that
// reuses its PID.
func Alive(pid int, startTime uint64) bool {
	state, st, err := readStat(pid)
	return err == nil && state != 'Z' && st == startTime
}

// ReopenLog makes the monitor reopen its log file after the file was moved
// away (CRI ReopenContainerLog) and waits until the new file exists.
func ReopenLog(ctx context.Context, pid int, startTime uint64, logPath string) error {
	if !Alive(pid, startTime) {
		return fmt.Errorf("reopening log %s: %w", logPath, ErrNotAlive)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("reopening log %s: signalling monitor %d: %w", logPath, pid, err)
	}
	for {
		if _, err := os.Stat(logPath); err == nil {
			return nil
		}
		if !Alive(pid, startTime) {
			return fmt.Errorf("reopening log %s: %w", logPath, ErrNotAlive)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reopening log %s: %w", logPath, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func startTime(pid int) (uint64, error) {
	_, st, err := readStat(pid)
	return st, err
}

// readStat returns the state (field 3) and start time (field 22, clock ticks
// after boot) of /proc/PID/stat. The command name (field 2) may hold spaces
// and parentheses, so fields are counted after its last ')'.
func readStat(pid int) (byte, uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, io.ErrUnexpectedEOF)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(fields))
	}
	st, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return fields[0][0], st, nil
}
