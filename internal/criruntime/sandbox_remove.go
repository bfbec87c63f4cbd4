package criruntime

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemovePodSandbox removes a sandbox: it is stopped first if need be, its
// containers are removed, then its runc container, directory and metadata.
//
// The CRI proto: "If there are any running containers in the sandbox, they
// must be forcibly removed. This call is idempotent, and must not return an
// error if the sandbox has already been removed."
func (s *Service) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if err := s.removePodSandbox(ctx, req.GetPodSandboxId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (s *Service) removePodSandbox(ctx context.Context, id string) error {
	sb, err := s.getSandbox(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Stopping is idempotent and covers a sandbox that is READY, or NOTREADY
	// with its network not yet torn down; once it has succeeded, pause's
	// runc container is deleted.
	if err := s.stopPodSandbox(ctx, id); err != nil {
		return fmt.Errorf("stop sandbox before removal: %w", err)
	}
	for _, c := range s.sandboxContainers(id) {
		if err := s.removeContainer(ctx, c.ID); err != nil {
			return fmt.Errorf("remove container of sandbox: %w", err)
		}
	}

	unlock := s.ops.lock(id)
	defer unlock()
	if err := s.removeSandboxDir(id); err != nil {
		return err
	}
	if err := s.forgetSandbox(id, sb.Name); err != nil {
		return err
	}
	s.logger(ctx).Info("pod sandbox removed", "podsandboxid", id)
	s.emit(id, id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}

// forgetSandbox deletes the sandbox's metadata and name reservation.
func (s *Service) forgetSandbox(id, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.store.delete(bucketSandboxes, id); err != nil {
		return err
	}
	delete(s.sandboxes, id)
	s.cpuRate.forget(id)
	if s.names[name] == id {
		delete(s.names, name)
	}
	return nil
}
