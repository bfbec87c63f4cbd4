package enter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/peapod-dev/peapod/internal/enter/plan"
)

var helperBin string

// TestMain builds peapod-enter for the tests.
func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "enter-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		helperBin = filepath.Join(dir, "peapod-enter")
		cmd := exec.Command("go", "build", "-o", helperBin, "../../cmd/peapod-enter")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build peapod-enter: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

// testHelper opens the peapod-enter built for the tests.
func testHelper(t *testing.T) *Helper {
	t.Helper()
	h, err := OpenHelper(helperBin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// send sends msg as request id with the fixed descriptors (stdio on
// /dev/null, a status pipe, this process's pidfd) and extra ones, and
// returns what the child reported on its status pipe and its wait status,
// or the server's refusal.
func send(t *testing.T, h *Helper, id uint64, msg []byte, extra ...int) (string, syscall.WaitStatus, error) {
	t.Helper()
	srv, err := h.server()
	if err != nil {
		t.Fatal(err)
	}
	var status [2]int
	if err := unix.Pipe2(status[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(status[0])
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	null := int(h.devNull.Fd())
	fds := append([]int{null, null, null, status[1], pidfd}, extra...)

	c := &call{started: make(chan startResult, 1), exited: make(chan exitResult, 1)}
	srv.mu.Lock()
	srv.pending[id] = c
	srv.mu.Unlock()
	_, _, err = srv.conn.WriteMsgUnix(msg, unix.UnixRights(fds...), nil)
	unix.Close(status[1])
	if err != nil {
		t.Fatal(err)
	}
	st := <-c.started
	if st.err != nil {
		return "", 0, st.err
	}
	st.pidfd.Close()
	exit := <-c.exited
	if exit.err != nil {
		t.Fatal(exit.err)
	}
	buf := make([]byte, 4096)
	n, _ := unix.Read(status[0], buf)
	return string(buf[:max(n, 0)]), exit.status, nil
}

func request(t *testing.T, id uint64, p *plan.Plan, cgroups uint32) []byte {
	t.Helper()
	b, err := plan.AppendRequest(nil, plan.Request{ID: id, Cgroups: cgroups}, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every field is read, in AppendRequest's order: a plan with all of them
// set but no command fails on the command, not on its encoding.
func TestServerDecodesEveryField(t *testing.T) {
	h := testHelper(t)
	p := &plan.Plan{
		Env: []string{"A=1", "B="}, Cwd: "/tmp",
		UID: 1000, GID: 3000, Groups: []uint32{2000, 100}, Umask: 0o27,
		Caps:    plan.Caps{Bounding: []uint32{0, 10}, Effective: []uint32{10}, Ambient: []uint32{40}},
		LastCap: 40, NoNewPrivileges: true,
		Rlimits:     []plan.Rlimit{{Type: 7, Soft: 1024, Hard: 1 << 62}},
		OOMScoreAdj: plan.KeepOOMScoreAdj, SessionKeyring: "_ses.x", Cgroups: []string{"/sys/fs/cgroup/cpu/a"},
		Namespaces: 0x20000, SeccompFlags: 2, SeccompFilter: bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 300),
	}
	msg, ws, err := send(t, h, 1, request(t, 1, p, 1), int(h.devNull.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if msg != "no command" || ws.ExitStatus() != 126 {
		t.Errorf("child said %q and exited with %v, want %q and 126", msg, ws, "no command")
	}
}

func TestServerRefusesMalformedRequests(t *testing.T) {
	h := testHelper(t)
	full := request(t, 2, &plan.Plan{Args: []string{"true"}}, 0)
	for name, c := range map[string]struct {
		msg   []byte
		extra []int
		want  string // from the child, or the server's errno
	}{
		"short header":      {[]byte{1, 2, 3}, nil, "fork: bad message"},
		"missing cgroup fd": {request(t, 0, &plan.Plan{Args: []string{"true"}}, 1), nil, "fork: bad message"},
		"truncated plan":    {full[:len(full)-1], nil, "malformed exec plan: bad number"},
		"trailing bytes":    {append(append([]byte(nil), full...), 0), nil, "malformed exec plan: trailing bytes"},
		"length past end":   {append(append([]byte(nil), full[:plan.RequestSize]...), 0x05), nil, "malformed exec plan: bad length"},
		"cgroups mismatch":  {request(t, 0, &plan.Plan{Args: []string{"true"}}, 1), []int{int(h.devNull.Fd())}, "malformed exec plan: 0 cgroup paths for 1 descriptors"},
	} {
		var id uint64
		if len(c.msg) >= 8 {
			id = uint64(c.msg[0]) // the IDs used here are below 256
		}
		msg, ws, err := send(t, h, id, c.msg, c.extra...)
		switch {
		case err != nil:
			if err.Error() != c.want {
				t.Errorf("%s: refused with %v, want %q", name, err, c.want)
			}
		case !strings.HasPrefix(msg, c.want) || ws.ExitStatus() != 126:
			t.Errorf("%s: child said %q and exited with %v, want %q and 126", name, msg, ws, c.want)
		}
	}
	// The server still serves.
	if msg, _, err := send(t, h, 3, request(t, 3, &plan.Plan{}, 0)); err != nil || msg != "no command" {
		t.Errorf("after malformed requests: %q, %v", msg, err)
	}
}

// A command runs in the namespaces given (here the test's own mount
// namespace) with its exit status, or fails with os/exec's error.
func TestServerRunsCommands(t *testing.T) {
	h := testHelper(t)
	p := plan.Plan{Cwd: "/", Env: []string{"PATH=/usr/bin:/bin"}, Namespaces: unix.CLONE_NEWNS, LastCap: 40,
		Umask: -1, OOMScoreAdj: plan.KeepOOMScoreAdj}
	for c := uint32(0); c <= 40; c++ {
		p.Caps.Bounding = append(p.Caps.Bounding, c)
	}
	for i, c := range []struct {
		args []string
		msg  string
		code int
	}{
		{[]string{"true"}, "", 0},
		{[]string{"sh", "-c", "exit 7"}, "", 7},
		{[]string{"no-such-command"}, `exec: "no-such-command": executable file not found in $PATH`, 126},
		{[]string{"/"}, `exec: "/": is a directory`, 126},
	} {
		p.Args = c.args
		id := uint64(10 + i)
		msg, ws, err := send(t, h, id, request(t, id, &p, 0))
		if err != nil || msg != c.msg || ws.ExitStatus() != c.code {
			t.Errorf("%q: %q, exit %d, %v; want %q, exit %d", c.args, msg, ws.ExitStatus(), err, c.msg, c.code)
		}
	}
}

// A server that has exited fails its calls and is replaced at the next.
func TestServerRestarts(t *testing.T) {
	h := testHelper(t)
	srv, err := h.server()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	// The reader fails whatever waits once the socket closes.
	c, st := srv.start(context.Background(), plan.Request{}, &plan.Plan{Args: []string{"true"}}, []int{0, 0, 0, 0, 0})
	if st.err == nil {
		<-c.exited
	} else if !errors.Is(st.err, errServerGone) && !strings.Contains(st.err.Error(), "send request") {
		t.Errorf("a call to an exited server: %v", st.err)
	}
	for srv.alive() {
		unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil)
	}
	if msg, _, err := send(t, h, 1, request(t, 1, &plan.Plan{}, 0)); err != nil || msg != "no command" {
		t.Errorf("after a restart: %q, %v", msg, err)
	}
	if h.srv == srv {
		t.Error("the exited server was reused")
	}
}
