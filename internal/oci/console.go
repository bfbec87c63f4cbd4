package oci

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoConsole is returned when runc did not send a terminal in time.
var ErrNoConsole = errors.New("runc sent no terminal")

// ConsoleSocket receives the master of the terminal runc makes for a
// container whose process has Terminal set (runc create --console-socket).
type ConsoleSocket struct {
	dir string
	ln  *net.UnixListener
}

// NewConsoleSocket listens on a socket in a new directory under the
// temporary directory, whose path is short enough for a socket address.
func NewConsoleSocket() (*ConsoleSocket, error) {
	dir, err := os.MkdirTemp("", "peapod-console-")
	if err != nil {
		return nil, fmt.Errorf("creating console socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("creating console socket: %w", err)
	}
	return &ConsoleSocket{dir: dir, ln: ln}, nil
}

// Path is the socket to give runc as --console-socket.
func (c *ConsoleSocket) Path() string { return c.ln.Addr().String() }

// ReceiveMaster returns the terminal runc sent, waiting at most timeout;
// call it once runc create has succeeded (runc sends it during create).
func (c *ConsoleSocket) ReceiveMaster(timeout time.Duration) (*os.File, error) {
	if err := c.ln.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("receiving terminal: %w", err)
	}
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, ErrNoConsole
		}
		return nil, fmt.Errorf("receiving terminal: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("receiving terminal: %w", err)
	}
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(name, oob)
	if err != nil {
		return nil, fmt.Errorf("receiving terminal: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receiving terminal: %w", err)
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil || len(fds) == 0 {
			continue
		}
		for _, extra := range fds[1:] {
			unix.Close(extra)
		}
		unix.CloseOnExec(fds[0])
		// Non-blocking, it joins Go's poller and honours deadlines.
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			return nil, fmt.Errorf("receiving terminal: %w", err)
		}
		return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
	}
	return nil, fmt.Errorf("receiving terminal: %w", ErrNoConsole)
}

// Close removes the socket.
func (c *ConsoleSocket) Close() error {
	err := c.ln.Close()
	os.RemoveAll(c.dir)
	return err
}
