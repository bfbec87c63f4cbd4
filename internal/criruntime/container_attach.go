package criruntime

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Attach returns the URL on the streaming server where a client attaches to
// the running container's stdio (through its monitor). The same checks as
// Exec apply.
func (s *Service) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := s.requireRunning(req.GetContainerId(), "attach to container"); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.stream.GetAttach(req)
	return resp, toStatus(err)
}
