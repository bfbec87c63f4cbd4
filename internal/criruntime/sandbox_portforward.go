package criruntime

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PortForward returns the URL on the streaming server that forwards
// connections to ports on the sandbox's loopback, dialled inside its network
// namespace. The sandbox must be ready. As in containerd, the ports are not
// checked against the pod's declared ports: the client names them when it
// opens a stream.
func (s *Service) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	sb, err := s.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	if s.sandboxState(&sb) != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, toStatus(&StateError{Op: "forward ports of sandbox", ID: sb.ID, State: "not ready"})
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, toStatus(invalidf("port %d out of range", p))
		}
	}
	resp, err := s.stream.GetPortForward(req)
	return resp, toStatus(err)
}
