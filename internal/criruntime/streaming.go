package criruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"

	"github.com/peapod-dev/peapod/internal/monitor"
	"github.com/peapod-dev/peapod/internal/netns"
	"github.com/peapod-dev/peapod/internal/oci"
)

// The methods below are what the CRI streaming server (stream_server.go)
// calls once a client has connected to the URL that the Exec, Attach and
// PortForward RPCs return.

// ExecStream runs cmd in a running container with the given streams, with a
// terminal when tty is set (its size from resize). A non-zero exit is
// returned as a k8s.io/utils/exec.CodeExitError, which the streaming server
// reports as the command's exit code.
func (s *Service) ExecStream(ctx context.Context, containerID string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan oci.TerminalSize) error {
	if len(cmd) == 0 {
		return invalidf("exec needs a command")
	}
	rec, err := s.getContainer(containerID)
	if err != nil {
		return err
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return &StateError{Op: "exec in container", ID: containerID, State: rec.State.String()}
	}
	p, err := s.execProcess(containerID, cmd)
	if err != nil {
		return err
	}
	p.Terminal = tty
	o := oci.ExecOpts{Stdin: stdin, Resize: resize}
	if stdout != nil {
		o.Stdout = stdout
	}
	if stderr != nil && !tty {
		o.Stderr = stderr
	}
	code, err := s.cfg.Runc.Exec(ctx, containerID, p, o)
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", containerID, err)
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with %d", cmd, code), Code: code}
	}
	return nil
}

// AttachStream attaches the streams to a container's monitor: its output
// from now on, its stdin if it was created with stdin, its terminal size.
// It returns when the container has exited or ctx ends.
func (s *Service) AttachStream(ctx context.Context, containerID string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan oci.TerminalSize) error {
	rec, err := s.getContainer(containerID)
	if err != nil {
		return err
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return &StateError{Op: "attach to container", ID: containerID, State: rec.State.String()}
	}
	if !processAlive(rec.MonitorPID, rec.MonitorStartTime) {
		return &StateError{Op: "attach to container", ID: containerID, State: "without a monitor"}
	}
	o := monitor.AttachOpts{Resize: resize}
	if stdin != nil && rec.Config.GetStdin() {
		o.Stdin = stdin
	}
	if stdout != nil {
		o.Stdout = stdout
	}
	if stderr != nil && !tty {
		o.Stderr = stderr
	}
	if err := monitor.Attach(ctx, monitor.AttachSocket(s.containerDir(containerID)), o); err != nil {
		return fmt.Errorf("attach to container %s: %w", containerID, err)
	}
	return nil
}

// PortForwardStream connects stream to port on the pod's loopback, dialled
// inside the pod's network namespace, and copies both ways until either
// side closes.
func (s *Service) PortForwardStream(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	sb, err := s.getSandbox(sandboxID)
	if err != nil {
		return err
	}
	if s.sandboxState(&sb) != runtimeapi.PodSandboxState_SANDBOX_READY {
		return &StateError{Op: "forward a port of sandbox", ID: sandboxID, State: "not ready"}
	}
	if port <= 0 || port > 65535 {
		return invalidf("port %d out of range", port)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	dial := func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", addr)
		conn = c
		return err
	}
	if sb.NetNSPath == "" {
		err = dial() // a host-network pod
	} else {
		// A socket stays in the namespace it was made in.
		err = netns.Do(sb.NetNSPath, dial)
	}
	if err != nil {
		return fmt.Errorf("forward port %d of sandbox %s: %w", port, sandboxID, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var wg sync.WaitGroup
	var inErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, inErr = io.Copy(conn, stream)
		// The client is done sending: let the server see EOF.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, outErr := io.Copy(stream, conn)
	stream.Close()
	wg.Wait()
	// Each side closing the other ends the other copy: not an error.
	closed := func(err error) bool {
		return err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
	}
	if closed(inErr) {
		inErr = nil
	}
	if closed(outErr) {
		outErr = nil
	}
	if err := errors.Join(inErr, outErr); err != nil && ctx.Err() == nil {
		return fmt.Errorf("forward port %d of sandbox %s: %w", port, sandboxID, err)
	}
	return nil
}
