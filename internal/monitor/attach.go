package monitor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/peapod-dev/peapod/internal/oci"
)

// The attach socket is a SOCK_SEQPACKET socket in the bundle (as CRI-O's
// conmon has), so each message keeps its bounds. From the monitor, a message
// is a stream byte then output. From a client, a kind byte then its data; a
// session with stdin starts with an empty stdin message.
const (
	attachSocketName = "attach"

	streamStdout byte = 1
	streamStderr byte = 2

	msgStdin      byte = 0
	msgResize     byte = 1 // width, height as big-endian uint16
	msgCloseStdin byte = 2

	// chunkSize bounds what one message carries; maxMessage fits any.
	chunkSize  = 8192
	maxMessage = chunkSize + 1
	// clientQueue is how many output messages a slow client may lag behind
	// before it is dropped: the container must never wait for a client.
	clientQueue = 64
)

// AttachSocket is the attach socket of the monitor of the container whose
// bundle is bundle.
func AttachSocket(bundle string) string { return filepath.Join(bundle, attachSocketName) }

// AttachOpts are the streams of an attach session; nil ones are not used.
type AttachOpts struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Resize <-chan oci.TerminalSize
}

// Attach connects to a container's monitor (CRI Attach): it copies the
// container's output from now on to Stdout and Stderr, Stdin to the container
// when it was created with Stdin, and sizes its terminal. It returns when the
// container has exited and its output is copied, or with ctx's error.
func Attach(ctx context.Context, socket string, o AttachOpts) error {
	conn, err := dialShort(socket)
	if err != nil {
		return fmt.Errorf("attaching to %s: %w", socket, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var writeMu sync.Mutex
	send := func(msg []byte) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		_, err := conn.Write(msg)
		return err
	}
	// A size queued before the call goes first, before any input.
	select {
	case size, ok := <-o.Resize:
		if ok {
			if err := send(resizeMessage(size)); err != nil {
				return fmt.Errorf("attaching to %s: %w", socket, err)
			}
		}
	default:
	}
	if o.Stdin != nil {
		// An empty stdin message says this session has stdin.
		if err := send([]byte{msgStdin}); err != nil {
			return fmt.Errorf("attaching to %s: %w", socket, err)
		}
		go func() {
			buf := make([]byte, maxMessage)
			buf[0] = msgStdin
			for {
				n, err := o.Stdin.Read(buf[1:])
				if n > 0 && send(buf[:1+n]) != nil {
					return
				}
				if err != nil {
					_ = send([]byte{msgCloseStdin})
					return
				}
			}
		}()
	}
	if o.Resize != nil {
		go func() {
			for {
				select {
				case size, ok := <-o.Resize:
					if !ok {
						return
					}
					if send(resizeMessage(size)) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	buf := make([]byte, maxMessage)
	for {
		n, err := conn.Read(buf)
		if err != nil || n == 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("attaching to %s: %w", socket, err)
		}
		var w io.Writer
		switch buf[0] {
		case streamStdout:
			w = o.Stdout
		case streamStderr:
			w = o.Stderr
		}
		if w != nil {
			if _, err := w.Write(buf[1:n]); err != nil {
				return fmt.Errorf("attaching to %s: writing output: %w", socket, err)
			}
		}
	}
}

func resizeMessage(size oci.TerminalSize) []byte {
	msg := []byte{msgResize, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(msg[1:], size.Width)
	binary.BigEndian.PutUint16(msg[3:], size.Height)
	return msg
}

// dialShort connects to a socket whose path may be longer than a socket
// address allows, through /proc/self/fd of its directory.
func dialShort(path string) (*net.UnixConn, error) {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	addr := &net.UnixAddr{Net: "unixpacket", Name: shortPath(dir, filepath.Base(path))}
	return net.DialUnix("unixpacket", nil, addr)
}

func shortPath(dir *os.File, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + name
}

// attachServer is the monitor's side: it fans the container's output out to
// the attached clients and their input into the container.
type attachServer struct {
	ln   *net.UnixListener
	path string
	// stdin is the container's stdin, nil when it has none.
	stdin     io.WriteCloser
	stdinOnce bool
	closeOnce sync.Once
	resize    func(oci.TerminalSize)

	mu      sync.Mutex
	clients map[*attachClient]struct{}
	closed  bool
	writers sync.WaitGroup
}

type attachClient struct {
	conn *net.UnixConn
	out  chan []byte
}

func listenAttach(bundle string, stdin io.WriteCloser, stdinOnce bool, resize func(oci.TerminalSize)) (*attachServer, error) {
	dir, err := os.Open(bundle)
	if err != nil {
		return nil, fmt.Errorf("creating attach socket: %w", err)
	}
	defer dir.Close()
	path := AttachSocket(bundle)
	_ = os.Remove(path) // left by a monitor that was killed
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Net: "unixpacket", Name: shortPath(dir, attachSocketName)})
	if err != nil {
		return nil, fmt.Errorf("creating attach socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	s := &attachServer{ln: ln, path: path, stdin: stdin, stdinOnce: stdinOnce, resize: resize, clients: map[*attachClient]struct{}{}}
	go s.serve()
	return s, nil
}

func (s *attachServer) serve() {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		c := &attachClient{conn: conn, out: make(chan []byte, clientQueue)}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.clients[c] = struct{}{}
		s.writers.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.writers.Done()
			c.write()
		}()
		go s.read(c)
	}
}

// write sends the client its output until the queue is closed.
func (c *attachClient) write() {
	for msg := range c.out {
		if _, err := c.conn.Write(msg); err != nil {
			break
		}
	}
	c.conn.Close()
	for range c.out {
	}
}

// read takes the client's input until it disconnects.
func (s *attachServer) read(c *attachClient) {
	buf := make([]byte, maxMessage)
	withStdin := false
	for {
		n, err := c.conn.Read(buf)
		if err != nil || n == 0 {
			break
		}
		switch buf[0] {
		case msgStdin:
			withStdin = true
			if s.stdin != nil && n > 1 {
				_, _ = s.stdin.Write(buf[1:n])
			}
		case msgResize:
			if n == 5 && s.resize != nil {
				s.resize(oci.TerminalSize{Width: binary.BigEndian.Uint16(buf[1:]), Height: binary.BigEndian.Uint16(buf[3:])})
			}
		case msgCloseStdin:
			s.endStdin()
		}
	}
	// The end of the first session with stdin closes the container's when
	// it asked for that (StdinOnce), however the session ended; sessions
	// that only watch the output do not count.
	if withStdin {
		s.endStdin()
	}
	s.drop(c)
}

func (s *attachServer) endStdin() {
	if s.stdin != nil && s.stdinOnce {
		s.closeOnce.Do(func() { s.stdin.Close() })
	}
}

func (s *attachServer) drop(c *attachClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c]; ok {
		delete(s.clients, c)
		close(c.out)
	}
}

// broadcast queues output for every client; a client too far behind is
// dropped rather than let it hold up the container.
func (s *attachServer) broadcast(stream byte, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.clients) == 0 {
		return
	}
	msg := make([]byte, 1+len(data))
	msg[0] = stream
	copy(msg[1:], data)
	for c := range s.clients {
		select {
		case c.out <- msg:
		default:
			delete(s.clients, c)
			close(c.out)
			c.conn.Close()
		}
	}
}

// close ends every session once its queued output is sent, waiting at most
// timeout for slow clients, and removes the socket.
func (s *attachServer) close(timeout time.Duration) {
	s.ln.Close()
	os.Remove(s.path)
	s.mu.Lock()
	s.closed = true
	for c := range s.clients {
		delete(s.clients, c)
		close(c.out)
		// A client that does not read gets no more than timeout.
		_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	s.mu.Unlock()
	s.writers.Wait()
}
