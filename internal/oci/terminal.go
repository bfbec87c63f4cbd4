package oci

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// terminal gives runc exec a pseudo-terminal as its stdio. runc 1.1 then
// makes the process's terminal in the container and relays between the two,
// resizing the inner one to the outer one's size on SIGWINCH. The other way,
// --console-socket, needs --detach, and the process would no longer be
// runc's child to wait for.
type terminal struct {
	master, slave *os.File
	o             ExecOpts
	output        chan struct{}
	// size is the initial size, when one was sent before the start.
	size *TerminalSize
}

func newTerminal(cmd *exec.Cmd, o ExecOpts) (retT *terminal, retErr error) {
	master, slave, err := openPty()
	if err != nil {
		return nil, err
	}
	t := &terminal{master: master, slave: slave, o: o, output: make(chan struct{})}
	defer func() {
		if retErr != nil {
			t.close()
		}
	}()
	// Raw from the start: runc makes it raw too, but only once it runs, and
	// input written before would be echoed twice.
	if err := makeRaw(slave); err != nil {
		return nil, err
	}
	// A size sent before the start (kubectl sends one first) is the
	// terminal's initial size.
	select {
	case size, ok := <-o.Resize:
		if ok {
			if err := t.setSize(size); err != nil {
				return nil, fmt.Errorf("setting terminal size: %w", err)
			}
			t.size = &size
		}
	default:
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	return t, nil
}

// makeRaw turns off the line discipline's processing, as cfmakeraw(3).
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("getting terminal attributes: %w", err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN] = 1
	tio.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		return fmt.Errorf("setting terminal attributes: %w", err)
	}
	return nil
}

// started relays the terminal once runc runs, until runcDone is closed.
func (t *terminal) started(runc *os.Process, runcDone <-chan struct{}) {
	// Only runc holds the slave now, so the output ends when runc exits.
	t.slave.Close()
	go func() {
		defer close(t.output)
		out := t.o.Stdout
		if out == nil {
			out = io.Discard
		}
		// Reading the master fails with EIO once the slave is closed.
		_, _ = io.Copy(out, t.master)
	}()
	if t.o.Stdin != nil {
		// Ends when the caller's stdin does or on the first write after
		// the terminal is closed.
		go func() { _, _ = io.Copy(t.master, t.o.Stdin) }()
	}
	if t.o.Resize != nil {
		go func() {
			for {
				select {
				case size, ok := <-t.o.Resize:
					if !ok {
						return
					}
					if t.setSize(size) == nil {
						_ = runc.Signal(syscall.SIGWINCH)
					}
				case <-runcDone:
					return
				}
			}
		}()
	}
}

// drain waits for the output that runc relayed before it exited.
func (t *terminal) drain() {
	select {
	case <-t.output:
	case <-time.After(execWaitDelay):
		t.master.Close()
		<-t.output
	}
}

func (t *terminal) close() {
	t.master.Close()
	t.slave.Close()
}

func (t *terminal) setSize(size TerminalSize) error {
	raw, err := t.master.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	err = raw.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
	})
	if err != nil {
		return err
	}
	return ioctlErr
}

// openPty opens a new pseudo-terminal pair.
func openPty() (master, slave *os.File, retErr error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx: %w", err)
	}
	// Non-blocking, the master joins Go's poller and can be closed while
	// it is read.
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	defer func() {
		if retErr != nil {
			master.Close()
		}
	}()
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, nil, fmt.Errorf("unlocking pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return nil, nil, fmt.Errorf("getting pty number: %w", err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", name, err)
	}
	return master, os.NewFile(uintptr(sfd), name), nil
}
