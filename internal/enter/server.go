package enter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/enter/plan"
)

// errServerGone fails the requests of a peapod-enter that has exited.
var errServerGone = errors.New("peapod-enter exited")

// server is a running peapod-enter: requests go out on conn, and one
// goroutine reads the replies and hands them to their calls.
type server struct {
	proc *os.Process
	conn *net.UnixConn

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*call // sent, not started yet
	running map[int32]*call  // started, not exited yet
	err     error            // why the server stopped; then it takes no calls
}

// call is one request's way through the server.
type call struct {
	started chan startResult // one value
	exited  chan exitResult  // one value, once started
}

type startResult struct {
	pid   int32
	pidfd *os.File
	err   error
}

type exitResult struct {
	status syscall.WaitStatus
	err    error
}

// startServer starts peapod-enter from the helper's memfd.
func startServer(path string) (*server, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket for peapod-enter: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "peapod-enter")
	theirs := os.NewFile(uintptr(fds[1]), "peapod-enter")
	defer theirs.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		ours.Close()
		return nil, err
	}
	defer devNull.Close()
	proc, err := os.StartProcess(path, []string{"peapod-enter"}, &os.ProcAttr{
		Env: []string{},
		// Its failures, if any, are on the daemon's stderr.
		Files: []*os.File{devNull, devNull, os.Stderr, theirs},
		// Its own session: the daemon's terminal and signals stay its own.
		Sys: &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("start peapod-enter: %w", err)
	}
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		_ = proc.Kill()
		_, _ = proc.Wait()
		return nil, fmt.Errorf("socket for peapod-enter: %w", err)
	}
	s := &server{
		proc:    proc,
		conn:    c.(*net.UnixConn),
		pending: map[uint64]*call{},
		running: map[int32]*call{},
	}
	go s.read()
	return s, nil
}

// read hands replies to their calls until peapod-enter goes away; then it
// fails every call still waiting and reaps the server.
func (s *server) read() {
	buf := make([]byte, plan.ReplySize+1)
	oob := make([]byte, unix.CmsgSpace(4))
	var err error
	for err == nil {
		var n, oobn int
		n, oobn, _, _, err = s.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			break
		}
		if n == 0 {
			err = errServerGone
			break
		}
		err = s.dispatch(buf[:n], oob[:oobn])
	}
	s.conn.Close()
	state, _ := s.proc.Wait()
	s.stop(fmt.Errorf("%w (%v): %v", errServerGone, state, err))
}

func (s *server) dispatch(msg, oob []byte) error {
	r, err := plan.ParseReply(msg)
	if err != nil {
		return err
	}
	var pidfd *os.File
	if len(oob) > 0 {
		if pidfd, err = parsePidfd(oob); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Kind {
	case plan.Started:
		c := s.pending[r.ID]
		delete(s.pending, r.ID)
		switch {
		case c == nil:
			return fmt.Errorf("reply to unknown request %d", r.ID)
		case r.Errno != 0:
			c.started <- startResult{err: fmt.Errorf("fork: %w", syscall.Errno(r.Errno))}
		case pidfd == nil:
			return fmt.Errorf("no pidfd for child %d", r.PID)
		default:
			// Registered before the next reply is read: its exit comes
			// after this.
			s.running[r.PID] = c
			c.started <- startResult{pid: r.PID, pidfd: pidfd}
			pidfd = nil
		}
	case plan.Exited:
		c := s.running[r.PID]
		delete(s.running, r.PID)
		if c == nil {
			return fmt.Errorf("exit of unknown child %d", r.PID)
		}
		c.exited <- exitResult{status: syscall.WaitStatus(r.Status)}
	default:
		return fmt.Errorf("unknown reply kind %d", r.Kind)
	}
	if pidfd != nil {
		pidfd.Close()
	}
	return nil
}

func parsePidfd(oob []byte) (*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("malformed control message from peapod-enter: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("malformed descriptors from peapod-enter: %v", err)
	}
	return os.NewFile(uintptr(fds[0]), "pidfd"), nil
}

// stop fails every waiting call with err; the server takes no more.
func (s *server) stop(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	for id, c := range s.pending {
		c.started <- startResult{err: s.err}
		delete(s.pending, id)
	}
	for pid, c := range s.running {
		c.exited <- exitResult{err: s.err}
		delete(s.running, pid)
	}
}

// alive reports whether the server still takes calls.
func (s *server) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil
}

// start sends one request (its header's ID is filled in) with its
// descriptors and waits for the child to be forked. The call's exited
// channel then gives its wait status.
//
// peapod-enter answers once the child has exec'd. When ctx ends first, the
// call fails at once and the child is killed when it has started.
func (s *server) start(ctx context.Context, req plan.Request, p *plan.Plan, fds []int) (*call, startResult) {
	c := &call{started: make(chan startResult, 1), exited: make(chan exitResult, 1)}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, startResult{err: s.err}
	}
	s.nextID++
	req.ID = s.nextID
	s.pending[req.ID] = c
	s.mu.Unlock()

	msg, err := plan.AppendRequest(make([]byte, 0, 4096), req, p)
	if err != nil {
		s.mu.Lock()
		delete(s.pending, req.ID)
		s.mu.Unlock()
		return nil, startResult{err: err}
	}
	if _, _, err = s.conn.WriteMsgUnix(msg, unix.UnixRights(fds...), nil); err != nil {
		s.mu.Lock()
		_, waiting := s.pending[req.ID]
		delete(s.pending, req.ID)
		s.mu.Unlock()
		if !waiting { // the server stopped and answered the call
			return nil, <-c.started
		}
		return nil, startResult{err: fmt.Errorf("send request to peapod-enter: %w", err)}
	}
	select {
	case r := <-c.started:
		return c, r
	case <-ctx.Done():
		go s.abandon(c)
		return nil, startResult{err: fmt.Errorf("start the command: %w", ctx.Err())}
	}
}

// stuckTimeout is how long peapod-enter may take to start one command (it
// serves nothing else meanwhile) before it is killed: a child stuck before
// exec, say on a hung file system, must not stop every exec for good.
const stuckTimeout = 30 * time.Second

// abandon kills the child of a call that gave up before it started.
func (s *server) abandon(c *call) {
	var r startResult
	select {
	case r = <-c.started:
	case <-time.After(stuckTimeout):
		_ = s.proc.Kill()
		r = <-c.started
	}
	if r.pidfd != nil {
		_ = unix.PidfdSendSignal(int(r.pidfd.Fd()), unix.SIGKILL, nil, 0)
		r.pidfd.Close()
	}
}

// close stops peapod-enter: it exits when its socket closes.
func (s *server) close() {
	s.conn.Close()
}
