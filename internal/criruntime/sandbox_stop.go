package criruntime

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/netns"
)

// StopPodSandbox stops a sandbox: every container in it is killed, then the
// pause process; the CNI network is torn down and the network namespace
// removed.
//
// The CRI proto: "If there are any running containers in the sandbox, they
// must be forcibly terminated. ... This call is idempotent, and must not
// return an error if all relevant resources have already been reclaimed."
func (s *Service) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if err := s.stopPodSandbox(ctx, req.GetPodSandboxId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *Service) stopPodSandbox(ctx context.Context, id string) error {
	unlock := s.ops.lock(id)
	defer unlock()
	sb, err := s.getSandbox(id)
	if errors.Is(err, ErrNotFound) {
		// An unknown sandbox has nothing left to reclaim (see above).
		return nil
	}
	if err != nil {
		return err
	}
	if sb.Stopped {
		return nil
	}
	log := s.logger(ctx).With("podsandboxid", id)

	// The containers are killed together, then pause.
	start := s.clock.Now()
	ctrs := s.sandboxContainers(id)
	errs := make([]error, len(ctrs))
	var wg sync.WaitGroup
	for i, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.killSandboxContainer(ctx, c.ID)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop containers of sandbox: %w", err)
	}
	containersTime := s.clock.Since(start)
	// NOTREADY before pause is killed, so that its watcher sees an expected
	// exit; the STOPPED event follows once pause is gone.
	wasReady := false
	if err := s.updateSandbox(id, func(r *sandboxRecord) {
		wasReady = r.State == runtimeapi.PodSandboxState_SANDBOX_READY
		r.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}); err != nil {
		return err
	}
	if err := s.stopPause(ctx, &sb); err != nil {
		return err
	}
	if wasReady {
		s.emit(id, id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
	pauseTime := s.clock.Since(start) - containersTime

	// runc delete (which frees the pause cgroup) and CNI DEL run together.
	var deleteErr, teardownErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.cfg.Runc.Delete(ctx, id, true); err != nil {
			deleteErr = fmt.Errorf("delete pause container: %w", err)
		}
	}()
	if sb.NetworkReady {
		if err := s.cfg.Network.Teardown(ctx, id, sb.NetNSPath, podNetwork(sb.Config)); err != nil {
			teardownErr = fmt.Errorf("tear down pod network: %w", err)
		}
	}
	wg.Wait()
	if teardownErr == nil && sb.NetworkReady {
		if err := s.updateSandbox(id, func(r *sandboxRecord) { r.NetworkReady = false }); err != nil {
			return err
		}
	}
	if err := errors.Join(deleteErr, teardownErr); err != nil {
		return err
	}
	if sb.NetNSPath != "" {
		if err := netns.Remove(sb.NetNSPath); err != nil {
			return fmt.Errorf("remove network namespace: %w", err)
		}
	}
	if err := s.updateSandbox(id, func(r *sandboxRecord) { r.Stopped = true }); err != nil {
		return err
	}
	log.Info("pod sandbox stopped", "took", s.clock.Since(start), "containers", containersTime, "pause", pauseTime)
	return nil
}

// killSandboxContainer kills a created or running container of a sandbox
// being stopped and waits for its exit.
func (s *Service) killSandboxContainer(ctx context.Context, id string) error {
	unlock := s.ops.lock(id)
	defer unlock()
	rec, err := s.getContainer(id)
	if err != nil {
		return nil
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_CREATED && rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil
	}
	return s.killContainer(s.logWith(ctx, "containerid", id), rec, 0)
}

// stopPause kills the pause process, waits for it to be gone and deletes the
// runc container (which frees its cgroup).
func (s *Service) stopPause(ctx context.Context, sb *sandboxRecord) error {
	// pause is signalled directly through a pidfd (checked by start time),
	// which saves running runc kill.
	if err := killProcess(sb.Pid, sb.PidStartTime, unix.SIGKILL); err != nil {
		return fmt.Errorf("kill pause: %w", err)
	}
	if err := waitProcessGone(ctx, sb.Pid, sb.PidStartTime); err != nil {
		return fmt.Errorf("wait for pause to exit: %w", err)
	}
	return nil
}

// killProcess sends sig to the process (pid, startTime) if it still runs.
func killProcess(pid int, startTime uint64, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if !processAlive(pid, startTime) {
		return nil // gone, or the PID now belongs to another process
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

// watchPause marks the sandbox NOTREADY, and sends its STOPPED event, when
// its pause process (identified by PID and start time) ends by itself.
func (s *Service) watchPause(id string, pid int, startTime uint64) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := waitProcessGone(s.ctx, pid, startTime); err != nil {
			return // the Service is closing; the next one checks pause again
		}
		wasReady := false
		if err := s.updateSandbox(id, func(r *sandboxRecord) {
			wasReady = r.State == runtimeapi.PodSandboxState_SANDBOX_READY
			r.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		}); err != nil {
			return // removed meanwhile
		}
		if wasReady {
			s.logger(s.ctx).Warn("pause process exited: sandbox not ready", "podsandboxid", id, "pid", pid,
				"output", s.pauseOutput(id))
			s.emit(id, id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		}
	}()
}
