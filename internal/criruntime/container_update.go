package criruntime

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// UpdateContainerResources changes a container's CPU and memory resources
// with `runc update` and records them in its config.
func (s *Service) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if err := s.updateContainerResources(ctx, req.GetContainerId(), req.GetLinux()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

func (s *Service) updateContainerResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error {
	if r == nil {
		return invalidf("linux resources are required")
	}
	unlock := s.ops.lock(id)
	defer unlock()
	rec, err := s.getContainer(id)
	if err != nil {
		return err
	}
	if rec.State == runtimeapi.ContainerState_CONTAINER_EXITED || rec.State == runtimeapi.ContainerState_CONTAINER_UNKNOWN {
		return &StateError{Op: "update resources of container", ID: id, State: rec.State.String()}
	}
	res := &specs.LinuxResources{}
	applyResources(res, r)
	if err := s.cfg.Runc.Update(ctx, id, res); err != nil {
		return fmt.Errorf("update resources of container %s: %w", id, err)
	}
	if err := s.updateContainer(id, func(c *containerRecord) {
		cfg := proto.Clone(c.Config).(*runtimeapi.ContainerConfig)
		if cfg.Linux == nil {
			cfg.Linux = &runtimeapi.LinuxContainerConfig{}
		}
		cfg.Linux.Resources = r
		c.Config = cfg
	}); err != nil {
		return err
	}
	plog.FromContext(ctx).Info("container resources updated", "containerid", id)
	return nil
}
