package criruntime

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// recover loads every sandbox and container from the metadata database and
// brings their state up to date: a pause process that is gone makes its
// sandbox NOTREADY; a container whose monitor (checked by PID and start
// time) still runs is watched again; one whose monitor is gone gets the exit
// its monitor recorded.
func (s *Service) recover(ctx context.Context) error {
	log := plog.FromContext(ctx)
	sbs, ctrs, err := s.store.loadAll()
	if err != nil {
		// A record that cannot be decoded is reported, not fatal: the others
		// must still be managed.
		log.Error("load runtime metadata", "error", err)
	}
	s.mu.Lock()
	for _, sb := range sbs {
		s.sandboxes[sb.ID] = sb
		s.names[sb.Name] = sb.ID
	}
	for _, c := range ctrs {
		s.containers[c.ID] = c
		s.names[c.Name] = c.ID
		s.exited[c.ID] = make(chan struct{})
	}
	s.mu.Unlock()

	for _, sb := range sbs {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY && !processAlive(sb.Pid, sb.PidStartTime) {
			log.Info("recover: pause process is gone, sandbox not ready", "podsandboxid", sb.ID, "pid", sb.Pid)
			if err := s.updateSandbox(sb.ID, func(r *sandboxRecord) { r.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY }); err != nil {
				return fmt.Errorf("recover sandbox %s: %w", sb.ID, err)
			}
		}
	}
	for _, c := range ctrs {
		switch c.State {
		case runtimeapi.ContainerState_CONTAINER_CREATED, runtimeapi.ContainerState_CONTAINER_RUNNING:
			if processAlive(c.MonitorPID, c.MonitorStartTime) {
				s.watchExit(c.MonitorPID, c.MonitorStartTime, c.ID)
				continue
			}
			s.handleExit(s.logWith(ctx, "containerid", c.ID), c.ID)
		default:
			s.closeExited(c.ID)
		}
	}
	log.Info("runtime recovered", "sandboxes", len(sbs), "containers", len(ctrs))
	return nil
}
