package criruntime

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/oci"
)

// StopContainer stops a running container: its stop signal (the image's
// StopSignal, else SIGTERM), then SIGKILL once the timeout has passed. It
// returns when the container has exited.
//
// The CRI proto: "This call is idempotent, and must not return an error if
// the container has already been stopped." A container that is not running
// (created or exited) is left as it is, as containerd does.
func (s *Service) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if err := s.stopContainer(ctx, req.GetContainerId(), time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

func (s *Service) stopContainer(ctx context.Context, id string, timeout time.Duration) error {
	unlock := s.ops.lock(id)
	defer unlock()
	rec, err := s.getContainer(id)
	if errors.Is(err, ErrNotFound) {
		return nil // already removed: nothing to stop
	}
	if err != nil {
		return err
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil
	}
	return s.killContainer(s.logWith(ctx, "containerid", id), rec, timeout)
}

// killContainer signals a created or running container and waits for its
// exit to be recorded. The caller holds the container's operation lock.
func (s *Service) killContainer(ctx context.Context, rec containerRecord, timeout time.Duration) error {
	log := plog.FromContext(ctx)
	exited := s.exitedCh(rec.ID)
	if timeout > 0 && rec.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		sig, err := parseSignal(rec.StopSignal)
		if err != nil {
			log.Warn("bad stop signal, using SIGTERM", "signal", rec.StopSignal, "error", err)
			sig = syscall.SIGTERM
		}
		if err := s.signal(ctx, rec.ID, sig, false); err != nil {
			return err
		}
		t := s.clock.NewTimer(timeout)
		select {
		case <-exited:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stop container %s: %w", rec.ID, ctx.Err())
		case <-t.C():
			log.Info("container did not stop in time, killing it", "timeout", timeout, "signal", sig)
		}
	}
	if err := s.signal(ctx, rec.ID, syscall.SIGKILL, true); err != nil {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for container %s to exit: %w", rec.ID, ctx.Err())
	}
}

// signal sends sig to the container; a container runc no longer knows or
// that is no longer running has exited already, which is not an error.
func (s *Service) signal(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	err := s.cfg.Runc.Kill(ctx, id, sig, all)
	if err == nil || errors.Is(err, oci.ErrNotExist) || errors.Is(err, oci.ErrNotRunning) {
		return nil
	}
	return fmt.Errorf("signal container %s with %v: %w", id, sig, err)
}
