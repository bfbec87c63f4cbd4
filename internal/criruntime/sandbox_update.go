package criruntime

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdatePodSandboxResources records the pod-level overhead and resources in
// the sandbox's config. The CRI proto: it "is called _after_ the Kubelet
// reconfigures the pod-level cgroups" and is best effort, so, as with
// containerd, nothing is resized here; the recorded values are what a later
// PodSandboxStatus or restart sees.
func (s *Service) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	id := req.GetPodSandboxId()
	unlock := s.ops.lock(id)
	defer unlock()
	err := s.updateSandbox(id, func(r *sandboxRecord) {
		c := proto.Clone(r.Config).(*runtimeapi.PodSandboxConfig)
		if c.Linux == nil {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{}
		}
		if req.GetOverhead() != nil {
			c.Linux.Overhead = req.GetOverhead()
		}
		if req.GetResources() != nil {
			c.Linux.Resources = req.GetResources()
		}
		r.Config = c
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
