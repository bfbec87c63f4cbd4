package criruntime

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/monitor"
)

// ReopenContainerLog asks the container's monitor to reopen its log file
// after the kubelet rotated it (SIGUSR1), and returns once the new file
// exists. The monitor is identified by PID and start time before it is
// signalled.
func (s *Service) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	if err := s.reopenContainerLog(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

func (s *Service) reopenContainerLog(ctx context.Context, id string) error {
	rec, err := s.getContainer(id)
	if err != nil {
		return err
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return &StateError{Op: "reopen the log of container", ID: id, State: rec.State.String()}
	}
	if rec.LogPath == "" {
		return nil // its output is discarded: no file to reopen
	}
	if err := monitor.ReopenLog(ctx, rec.MonitorPID, rec.MonitorStartTime, rec.LogPath); err != nil {
		return fmt.Errorf("reopen log of container %s: %w", id, err)
	}
	return nil
}
