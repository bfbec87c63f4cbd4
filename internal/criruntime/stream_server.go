package criruntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/peapod-dev/peapod/internal/oci"
)

// DefaultStreamAddress is where the streaming server listens when
// Config.StreamAddress is empty: loopback, on a port the kernel picks.
const DefaultStreamAddress = "127.0.0.1:0"

// streamServer is the CRI streaming server (k8s.io/cri-streaming, the one
// the kubelet and containerd use): Exec, Attach and PortForward return a
// one-time URL on it, and the client that connects there (the kubelet's
// proxy, crictl) gets the streams over SPDY or WebSocket.
type streamServer struct {
	streaming.Server
	http *http.Server
	done chan struct{} // closed when Serve has returned
}

// startStreamServer listens on addr and serves the streaming endpoints until
// stop. The listener is opened here, before any URL is handed out, so that
// the URLs carry the real port. Requests run under base: closing the Service
// cancels the streams still open.
func startStreamServer(base context.Context, addr string, rt streaming.Runtime) (*streamServer, error) {
	if addr == "" {
		addr = DefaultStreamAddress
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String()}
	srv, err := streaming.NewServer(cfg, rt)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	s := &streamServer{
		Server: srv,
		http: &http.Server{
			Handler:           srv,
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return base },
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.http.Serve(l)
	}()
	return s, nil
}

// stop closes the listener and the connections not yet upgraded; upgraded
// streams end when the base context is cancelled.
func (s *streamServer) stop() error {
	err := s.http.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// streamRuntime is the streaming.Runtime over the Service's stream methods.
type streamRuntime struct{ s *Service }

func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return r.s.ExecStream(ctx, containerID, cmd, in, out, errOut, tty, terminalSizes(ctx, resize))
}

func (r streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return r.s.AttachStream(ctx, containerID, in, out, errOut, tty, terminalSizes(ctx, resize))
}

func (r streamRuntime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	return r.s.PortForwardStream(ctx, sandboxID, port, stream)
}

// terminalSizes converts the streaming server's resize events into the OCI
// client's until in is closed or ctx ends.
func terminalSizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan oci.TerminalSize {
	if in == nil {
		return nil
	}
	out := make(chan oci.TerminalSize)
	go func() {
		defer close(out)
		for {
			select {
			case size, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- oci.TerminalSize{Width: size.Width, Height: size.Height}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
