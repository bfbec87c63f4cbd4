package criruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/monitor"
)

// Exit reasons, as the kubelet and containerd spell them.
const (
	reasonCompleted = "Completed"
	reasonError     = "Error"
	reasonOOMKilled = "OOMKilled"
	reasonUnknown   = "Unknown"
)

// unknownExitCode is recorded when a container's exit could not be observed
// (its monitor died without writing the exit file), as containerd does.
const unknownExitCode = 255

// watchExit waits in the background for the container's monitor (identified
// by PID and start time) to exit, then records the container's exit. When
// the Service closes first, the watch ends and the next Service recovers it.
func (s *Service) watchExit(monitorPID int, startTime uint64, id string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx := plog.With(s.ctx, "containerid", id)
		if err := waitProcessGone(ctx, monitorPID, startTime); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			plog.FromContext(ctx).Error("wait for container monitor", "pid", monitorPID, "error", err)
		}
		if s.ctx.Err() != nil {
			return
		}
		s.handleExit(ctx, id)
	}()
}

// handleExit records the exit of a container whose monitor is gone: exit
// code and time from the monitor's exit file, OOM from the container's
// cgroup (read before `runc delete` removes it). Then it deletes the runc
// container, which frees its cgroup and kills what is left of it.
func (s *Service) handleExit(ctx context.Context, id string) {
	log := plog.FromContext(ctx)
	unlockStart := s.starts.lock(id)
	rec, err := s.getContainer(id)
	if err != nil {
		unlockStart()
		return // removed meanwhile
	}
	if rec.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		code, finished, reason, message := int32(unknownExitCode), s.clock.Now(), reasonUnknown, ""
		ex, err := monitor.ReadExit(filepath.Join(s.containerDir(id), "exit"))
		switch {
		case err == nil:
			code, finished = int32(ex.ExitCode), ex.FinishedAt
			reason = reasonError
			if code == 0 {
				reason = reasonCompleted
			}
		case errors.Is(err, os.ErrNotExist):
			message = "the container's monitor exited without recording its exit"
		default:
			message = fmt.Sprintf("read exit of container: %v", err)
		}
		if s.cfg.Cgroups != nil {
			oom, err := s.cfg.Cgroups.OOMKilled(rec.CgroupPath)
			if err != nil {
				log.Debug("read OOM state of container cgroup", "cgroup", rec.CgroupPath, "error", err)
			} else if oom {
				reason = reasonOOMKilled
			}
		}
		if err := s.updateContainer(id, func(r *containerRecord) {
			r.State = runtimeapi.ContainerState_CONTAINER_EXITED
			r.ExitCode = code
			r.FinishedAt = finished.UnixNano()
			if r.Reason == "" || reason == reasonOOMKilled {
				r.Reason = reason
			}
			if r.Message == "" {
				r.Message = message
			}
		}); err != nil {
			log.Error("record container exit", "error", err)
		}
		s.emit(id, rec.SandboxID, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		log.Info("container exited", "exitCode", code, "reason", reason)
	}
	unlockStart()
	// StopContainer returns now; RemoveContainer waits for the delete.
	deleted := s.deletedCh(id)
	s.closeExited(id)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.cfg.Runc.Delete(cctx, id, true); err != nil {
		log.Error("delete exited container", "error", err)
	}
	close(deleted)
}

// deletedCh returns a new channel for the runc delete that follows an exit;
// waitDeleted waits for it.
func (s *Service) deletedCh(id string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.deleted[id] = ch
	return ch
}

// waitDeleted waits for a runc delete started by handleExit, if any.
func (s *Service) waitDeleted(ctx context.Context, id string) error {
	s.mu.RLock()
	ch := s.deleted[id]
	s.mu.RUnlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeExited signals that the container's exit is recorded.
func (s *Service) closeExited(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.exited[id]
	if !ok {
		ch = make(chan struct{})
		s.exited[id] = ch
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// exitedCh returns the channel closed once the container's exit is recorded.
func (s *Service) exitedCh(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.exited[id]
	if !ok {
		ch = make(chan struct{})
		s.exited[id] = ch
	}
	return ch
}

// waitProcessGone returns once the process (pid, startTime) has exited, or
// with ctx's error. It works for processes that are not our children (a
// monitor of a previous daemon) through a pidfd, opened only after the start
// time has been checked so that a reused PID is never waited for.
func waitProcessGone(ctx context.Context, pid int, startTime uint64) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pidfd of %d: %w", pid, err)
	}
	// The pidfd refers to whatever process has the PID now: check it is ours.
	if !processAlive(pid, startTime) {
		unix.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid))
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	done := make(chan error, 1)
	go func() {
		// The runtime poller waits until the pidfd is readable: the process exited.
		done <- rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 0)
			return err != nil || n > 0
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("wait for process %d: %w", pid, err)
		}
		return nil
	case <-ctx.Done():
		_ = f.SetReadDeadline(time.Now())
		<-done
		return ctx.Err()
	}
}
