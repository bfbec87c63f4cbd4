// Package server serves the CRI v1 RuntimeService and ImageService over gRPC
// on a unix socket, so that crictl, critest and a real kubelet can use
// peapod's runtime.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// maxMsgSize is the message size limit of the kubelet's CRI client (16 MiB).
const maxMsgSize = 16 * 1024 * 1024

// stopGrace bounds how long in-flight calls may finish once ctx ends.
const stopGrace = 10 * time.Second

// Serve listens on the unix socket path (mode 0600; a stale socket there is
// replaced) and serves rt and img until ctx ends, then stops gracefully and
// removes the socket. ready, when not nil, is called once the socket accepts
// connections.
func Serve(ctx context.Context, path string, rt runtimeapi.RuntimeServiceServer, img runtimeapi.ImageServiceServer, ready func()) error {
	log := plog.FromContext(ctx)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create CRI socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("CRI socket %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale CRI socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on CRI socket: %w", err)
	}
	defer os.Remove(path)
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("restrict CRI socket: %w", err)
	}

	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(maxMsgSize),
		grpc.MaxSendMsgSize(maxMsgSize),
		grpc.ChainUnaryInterceptor(withLogger(ctx)),
		grpc.ChainStreamInterceptor(withStreamLogger(ctx)),
	)
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	runtimeapi.RegisterImageServiceServer(srv, img)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("serving CRI", "socket", path)
	if ready != nil {
		ready()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve CRI: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		srv.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve CRI: %w", err)
	}
	return nil
}

// withLogger gives each call the server's logger and logs failed calls.
func withLogger(base context.Context) grpc.UnaryServerInterceptor {
	l := plog.FromContext(base)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(plog.WithLogger(ctx, l), req)
		if err != nil {
			l.Debug("CRI call failed", "method", info.FullMethod, "code", status.Code(err).String(), "error", err)
		}
		return resp, err
	}
}

func withStreamLogger(base context.Context) grpc.StreamServerInterceptor {
	l := plog.FromContext(base)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, &loggedStream{ServerStream: ss, ctx: plog.WithLogger(ss.Context(), l)})
		if err != nil {
			l.Debug("CRI stream failed", "method", info.FullMethod, "code", status.Code(err).String(), "error", err)
		}
		return err
	}
}

type loggedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *loggedStream) Context() context.Context { return s.ctx }
