package criruntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// RemoveContainer removes a container: it is killed if it still runs, then
// its runc state, snapshot, directory and metadata go.
//
// The CRI proto: "If the container is running, the container must be forcibly
// removed. This call is idempotent, and must not return an error if the
// container has already been removed."
func (s *Service) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	if err := s.removeContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (s *Service) removeContainer(ctx context.Context, id string) error {
	unlock := s.ops.lock(id)
	defer unlock()
	rec, err := s.getContainer(id)
	if err != nil {
		return nil // already removed
	}
	ctx = s.logWith(ctx, "containerid", id)
	if rec.State == runtimeapi.ContainerState_CONTAINER_CREATED || rec.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		if err := s.killContainer(ctx, rec, 0); err != nil {
			return fmt.Errorf("stop container before removal: %w", err)
		}
	}
	if err := s.waitDeleted(ctx, id); err != nil {
		return fmt.Errorf("wait for container %s to be deleted: %w", id, err)
	}
	if err := s.cfg.Runc.Delete(ctx, id, true); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	dir := s.containerDir(id)
	if err := s.cfg.Snapshots.Remove(id, filepath.Join(dir, "rootfs")); err != nil {
		return fmt.Errorf("remove snapshot of container %s: %w", id, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove directory of container %s: %w", id, err)
	}
	if err := s.forgetContainer(id, rec.Name); err != nil {
		return err
	}
	plog.FromContext(ctx).Info("container removed")
	s.emit(id, rec.SandboxID, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}

// forgetContainer deletes the container's metadata and name reservation.
func (s *Service) forgetContainer(id, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.store.delete(bucketContainers, id); err != nil {
		return err
	}
	delete(s.containers, id)
	delete(s.exited, id)
	delete(s.deleted, id)
	s.cpuRate.forget(id)
	if b, ok := s.execBundles.LoadAndDelete(id); ok {
		b.(*execBundle).close()
	}
	if s.names[name] == id {
		delete(s.names, name)
	}
	return nil
}
