package criruntime

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec returns the URL on the streaming server where a client runs cmd in
// the container, as containerd does: the container must be running; the
// streaming server refuses a request without stdin, stdout or stderr, and a
// terminal with stderr (a terminal has one output).
func (s *Service) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, toStatus(invalidf("exec needs a command"))
	}
	if err := s.requireRunning(req.GetContainerId(), "exec in container"); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.stream.GetExec(req)
	return resp, toStatus(err)
}

// requireRunning fails unless the container exists and is running.
func (s *Service) requireRunning(id, op string) error {
	rec, err := s.getContainer(id)
	if err != nil {
		return err
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return &StateError{Op: op, ID: id, State: rec.State.String()}
	}
	return nil
}
