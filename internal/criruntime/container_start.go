package criruntime

import (
	"context"
	"fmt"
	"syscall"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// StartContainer starts a created container: `runc start` makes its init
// process execute; the monitor already holds its stdio.
func (s *Service) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	if err := s.startContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

func (s *Service) startContainer(ctx context.Context, id string) error {
	unlock := s.ops.lock(id)
	defer unlock()
	rec, err := s.getContainer(id)
	if err != nil {
		return err
	}
	ctx = s.logWith(ctx, "containerid", id, "podsandboxid", rec.SandboxID)
	if rec.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		return &StateError{Op: "start container", ID: id, State: rec.State.String()}
	}
	sb, err := s.getSandbox(rec.SandboxID)
	if err != nil {
		return fmt.Errorf("sandbox of container: %w", err)
	}
	if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return &StateError{Op: "start a container in sandbox", ID: sb.ID, State: "not ready"}
	}
	unlockStart := s.starts.lock(id)
	defer unlockStart()
	startedAt := s.clock.Now().UnixNano()
	if err := s.cfg.Runc.Start(ctx, id); err != nil {
		// Kill the created process so that the monitor records an exit and
		// the container does not stay CREATED forever (containerd marks it
		// exited with reason StartError).
		msg := err.Error()
		_ = s.updateContainer(id, func(r *containerRecord) { r.Reason, r.Message = "StartError", msg })
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if kerr := s.cfg.Runc.Kill(cctx, id, syscall.SIGKILL, true); kerr != nil {
			plog.FromContext(ctx).Warn("kill container that failed to start", "error", kerr)
		}
		return fmt.Errorf("start container: %w", err)
	}
	// The exit watcher cannot record an exit before this (s.starts), but a
	// recovered record may already say EXITED: keep that state.
	if err := s.updateContainer(id, func(r *containerRecord) {
		r.StartedAt = startedAt
		if r.State == runtimeapi.ContainerState_CONTAINER_CREATED {
			r.State = runtimeapi.ContainerState_CONTAINER_RUNNING
		}
	}); err != nil {
		return fmt.Errorf("record container start: %w", err)
	}
	s.emit(id, rec.SandboxID, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	plog.FromContext(ctx).Info("container started")
	return nil
}
