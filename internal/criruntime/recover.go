package criruntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/netns"
	"github.com/peapod-dev/peapod/internal/network"
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
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY && processAlive(sb.Pid, sb.PidStartTime) {
			s.watchPause(sb.ID, sb.Pid, sb.PidStartTime)
			continue
		}
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
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
	s.collectOrphans(ctx)
	log.Info("runtime recovered", "sandboxes", len(sbs), "containers", len(ctrs))
	return nil
}

// collectOrphans removes what a daemon that died in the middle of
// RunPodSandbox or CreateContainer left behind: a sandbox or container
// directory without a record (records are written last), with its runc
// container, snapshot, network and network namespace pin.
func (s *Service) collectOrphans(ctx context.Context) {
	log := plog.FromContext(ctx)
	s.mu.RLock()
	known := func(id string) bool {
		_, sb := s.sandboxes[id]
		_, c := s.containers[id]
		return sb || c
	}
	var orphanSandboxes, orphanContainers []string
	if entries, err := os.ReadDir(filepath.Join(s.cfg.Root, "containers")); err == nil {
		for _, e := range entries {
			if !known(e.Name()) {
				orphanContainers = append(orphanContainers, e.Name())
			}
		}
	}
	if entries, err := os.ReadDir(filepath.Join(s.cfg.Root, "sandboxes")); err == nil {
		for _, e := range entries {
			if !known(e.Name()) {
				orphanSandboxes = append(orphanSandboxes, e.Name())
			}
		}
	}
	var orphanPins []string
	if entries, err := os.ReadDir(s.netnsDir()); err == nil {
		for _, e := range entries {
			if !known(e.Name()) && !slices.Contains(orphanSandboxes, e.Name()) {
				orphanPins = append(orphanPins, e.Name())
			}
		}
	}
	s.mu.RUnlock()

	for _, id := range orphanContainers {
		log.Info("recover: removing container left by an interrupted create", "containerid", id)
		dir := s.containerDir(id)
		if err := s.cfg.Runc.Delete(ctx, id, true); err != nil {
			log.Error("recover: delete orphan container", "containerid", id, "error", err)
			continue
		}
		if err := s.cfg.Snapshots.Remove(id, filepath.Join(dir, "rootfs")); err != nil {
			log.Error("recover: remove orphan snapshot", "containerid", id, "error", err)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Error("recover: remove orphan container directory", "containerid", id, "error", err)
		}
	}
	for _, id := range orphanSandboxes {
		log.Info("recover: removing sandbox left by an interrupted run", "podsandboxid", id)
		if err := s.cfg.Runc.Delete(ctx, id, true); err != nil {
			log.Error("recover: delete orphan pause container", "podsandboxid", id, "error", err)
			continue
		}
		if err := s.removeOrphanNetwork(ctx, id); err != nil {
			log.Error("recover: tear down orphan sandbox network", "podsandboxid", id, "error", err)
			continue
		}
		if err := s.removeSandboxDir(id); err != nil {
			log.Error("recover: remove orphan sandbox directory", "podsandboxid", id, "error", err)
		}
	}
	for _, id := range orphanPins {
		if err := s.removeOrphanNetwork(ctx, id); err != nil {
			log.Error("recover: tear down orphan network namespace", "podsandboxid", id, "error", err)
		}
	}
}

// removeOrphanNetwork tears down the CNI network of an unrecorded sandbox
// (libcni's cache knows what was set up) and removes its netns pin.
func (s *Service) removeOrphanNetwork(ctx context.Context, id string) error {
	pin := filepath.Join(s.netnsDir(), id)
	if s.cfg.Network != nil {
		if err := s.cfg.Network.Teardown(ctx, id, pin, network.PodNetwork{}); err != nil {
			return err
		}
	}
	return netns.Remove(pin)
}
