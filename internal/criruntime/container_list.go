package criruntime

import (
	"context"
	"sort"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainers lists containers matching the filter: ID (or a unique
// prefix of it), state, sandbox ID and label selector.
func (s *Service) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*runtimeapi.Container
	for _, r := range s.containers {
		if f != nil {
			if f.GetId() != "" && !strings.HasPrefix(r.ID, f.GetId()) {
				continue
			}
			if f.GetState() != nil && f.GetState().GetState() != r.State {
				continue
			}
			if f.GetPodSandboxId() != "" && !strings.HasPrefix(r.SandboxID, f.GetPodSandboxId()) {
				continue
			}
			if !matchLabels(f.GetLabelSelector(), r.Config.GetLabels()) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{
			Id:           r.ID,
			PodSandboxId: r.SandboxID,
			Metadata:     r.Config.GetMetadata(),
			// As containerd: the config's image and the image ID, which
			// the kubelet's image GC matches against ListImages.
			Image:       r.Config.GetImage(),
			ImageRef:    r.ImageRef,
			ImageId:     r.ImageRef,
			State:       r.State,
			CreatedAt:   r.CreatedAt,
			Labels:      r.Config.GetLabels(),
			Annotations: r.Config.GetAnnotations(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}
