package criruntime

import (
	"context"
	"sort"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists sandboxes matching the filter: ID (or a prefix of
// it), state and label selector.
func (s *Service) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*runtimeapi.PodSandbox
	for _, r := range s.sandboxes {
		state := s.sandboxState(r)
		if f != nil {
			if f.GetId() != "" && !strings.HasPrefix(r.ID, f.GetId()) {
				continue
			}
			if f.GetState() != nil && f.GetState().GetState() != state {
				continue
			}
			if !matchLabels(f.GetLabelSelector(), r.Config.GetLabels()) {
				continue
			}
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id:             r.ID,
			Metadata:       r.Config.GetMetadata(),
			State:          state,
			CreatedAt:      r.CreatedAt,
			Labels:         r.Config.GetLabels(),
			Annotations:    r.Config.GetAnnotations(),
			RuntimeHandler: r.RuntimeHandler,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}
