package criruntime

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/netns"
)

// StopPodSandbox stops a sandbox: every container in it is killed, then the
// pause process; the CNI network is torn down and the network namespace
// removed.
//
// The CRI proto: "If there are any running containers in the sandbox, they
// must be forcibly terminated. ... This call is idempotent, and must not
// return an error if all relevant resources have already been reclaimed."
func (s *Service) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if err := s.stopPodSandbox(ctx, req.GetPodSandboxId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *Service) stopPodSandbox(ctx context.Context, id string) error {
	unlock := s.ops.lock(id)
	defer unlock()
	sb, err := s.getSandbox(id)
	if errors.Is(err, ErrNotFound) {
		// An unknown sandbox has nothing left to reclaim (see above).
		return nil
	}
	if err != nil {
		return err
	}
	log := s.logger(ctx).With("podsandboxid", id)

	var errs []error
	for _, c := range s.sandboxContainers(id) {
		if err := s.killSandboxContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop containers of sandbox: %w", errors.Join(errs...))
	}

	if err := s.stopPause(ctx, &sb); err != nil {
		return err
	}
	if err := s.updateSandbox(id, func(r *sandboxRecord) { r.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY }); err != nil {
		return err
	}

	if sb.NetworkReady {
		if err := s.cfg.Network.Teardown(ctx, id, sb.NetNSPath, podNetwork(sb.Config)); err != nil {
			return fmt.Errorf("tear down pod network: %w", err)
		}
		if err := s.updateSandbox(id, func(r *sandboxRecord) { r.NetworkReady = false }); err != nil {
			return err
		}
	}
	if sb.NetNSPath != "" {
		if err := netns.Remove(sb.NetNSPath); err != nil {
			return fmt.Errorf("remove network namespace: %w", err)
		}
	}
	s.emit(id, id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	log.Info("pod sandbox stopped")
	return nil
}

// killSandboxContainer kills a created or running container of a sandbox
// being stopped and waits for its exit.
func (s *Service) killSandboxContainer(ctx context.Context, id string) error {
	unlock := s.ops.lock(id)
	defer unlock()
	rec, err := s.getContainer(id)
	if err != nil {
		return nil
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_CREATED && rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil
	}
	return s.killContainer(s.logWith(ctx, "containerid", id), rec, 0)
}

// stopPause kills the pause process, waits for it to be gone and deletes the
// runc container (which frees its cgroup).
func (s *Service) stopPause(ctx context.Context, sb *sandboxRecord) error {
	if processAlive(sb.Pid, sb.PidStartTime) {
		if err := s.signal(ctx, sb.ID, syscall.SIGKILL, false); err != nil {
			return fmt.Errorf("kill pause: %w", err)
		}
		if err := waitProcessGone(ctx, sb.Pid, sb.PidStartTime); err != nil {
			return fmt.Errorf("wait for pause to exit: %w", err)
		}
	}
	if err := s.cfg.Runc.Delete(ctx, sb.ID, true); err != nil {
		return fmt.Errorf("delete pause container: %w", err)
	}
	return nil
}
