package criruntime

import (
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// eventBuffer is how many events a slow subscriber may fall behind before
// events to it are dropped (containerd's CRI buffers 1000 too).
const eventBuffer = 1000

// GetContainerEvents streams container and sandbox lifecycle events
// (created, started, stopped, deleted) with the sandbox's status and its
// containers' statuses, as the kubelet's evented PLEG expects, until the
// client goes away or the Service closes.
func (s *Service) GetContainerEvents(req *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	ch := make(chan *runtimeapi.ContainerEventResponse, eventBuffer)
	s.evMu.Lock()
	s.subscribers[ch] = struct{}{}
	s.evMu.Unlock()
	defer func() {
		s.evMu.Lock()
		delete(s.subscribers, ch)
		s.evMu.Unlock()
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-s.ctx.Done():
			return nil
		case ev := <-ch:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// emit sends an event about id (a container or a sandbox) in sandbox
// sandboxID to every subscriber that keeps up.
func (s *Service) emit(id, sandboxID string, t runtimeapi.ContainerEventType) {
	s.evMu.Lock()
	n := len(s.subscribers)
	s.evMu.Unlock()
	if n == 0 {
		return
	}
	ev := &runtimeapi.ContainerEventResponse{
		ContainerId:        id,
		ContainerEventType: t,
		CreatedAt:          s.clock.Now().UnixNano(),
	}
	s.mu.RLock()
	if sb, ok := s.sandboxes[sandboxID]; ok {
		c := *sb
		c.State = s.sandboxState(sb)
		ev.PodSandboxStatus = sandboxStatus(&c)
	}
	for _, c := range s.containers {
		if c.SandboxID == sandboxID {
			ev.ContainersStatuses = append(ev.ContainersStatuses, containerStatus(c))
		}
	}
	s.mu.RUnlock()
	s.evMu.Lock()
	defer s.evMu.Unlock()
	for ch := range s.subscribers {
		select {
		case ch <- ev:
		default:
			plog.FromContext(s.ctx).Warn("container event dropped: subscriber too slow", "containerid", id, "event", t.String())
		}
	}
}
