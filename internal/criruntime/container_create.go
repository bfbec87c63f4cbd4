package criruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/image"
	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/monitor"
	"github.com/peapod-dev/peapod/internal/oci"
)

// CreateContainer creates a container in a sandbox: an overlay snapshot of
// the image as its root, an OCI bundle joining the sandbox's namespaces, and
// a peapod-monitor that runs `runc create` and then holds the container's
// stdio and records its exit. StartContainer only runs `runc start`, as with
// containerd. Every step is undone if a later one fails.
func (s *Service) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	id, err := s.createContainer(ctx, req)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (s *Service) createContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (_ string, retErr error) {
	config := req.GetConfig()
	if config == nil || config.GetMetadata().GetName() == "" {
		return "", invalidf("container config with metadata name is required")
	}
	if config.GetImage().GetImage() == "" {
		return "", invalidf("container image is required")
	}
	// Hold the sandbox so that it cannot be stopped or removed while one of
	// its containers is being created.
	unlock := s.ops.lock(req.GetPodSandboxId())
	defer unlock()
	sb, err := s.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return "", fmt.Errorf("find sandbox of container: %w", err)
	}
	if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", &StateError{Op: "create a container in sandbox", ID: sb.ID, State: "not ready"}
	}
	// The sandbox config the kubelet passes again is the one it ran the
	// sandbox with; the recorded one is authoritative.
	sandboxConfig := sb.Config

	id := newID()
	name := makeContainerName(config.GetMetadata(), sandboxConfig.GetMetadata())
	ctx = s.logWith(ctx, "containerid", id, "container", config.GetMetadata().GetName(), "podsandboxid", sb.ID)
	log := plog.FromContext(ctx)
	if err := s.reserveName(name, id); err != nil {
		return "", fmt.Errorf("reserve container name: %w", err)
	}
	defer func() {
		if retErr != nil {
			s.releaseName(name)
		}
	}()

	img, err := s.cfg.Images.Resolve(config.GetImage().GetImage())
	if err != nil {
		if errors.Is(err, image.ErrNotFound) {
			return "", fmt.Errorf("resolve image %q: %w", config.GetImage().GetImage(), ErrNotFound)
		}
		return "", fmt.Errorf("resolve image %q: %w", config.GetImage().GetImage(), err)
	}
	layers, err := s.cfg.Images.LayerDirs(img)
	if err != nil {
		return "", fmt.Errorf("find layers of image %s: %w", img.ID, err)
	}

	dir := s.containerDir(id)
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o711); err != nil {
		return "", fmt.Errorf("create container directory: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := os.RemoveAll(dir); err != nil {
				log.Error("rollback: remove container directory", "error", err)
			}
		}
	}()
	defer func() {
		if retErr != nil {
			if err := s.cfg.Snapshots.Remove(id, rootfs); err != nil {
				log.Error("rollback: remove container snapshot", "error", err)
			}
		}
	}()
	if err := s.cfg.Snapshots.Prepare(id, layers, rootfs); err != nil {
		return "", fmt.Errorf("prepare container rootfs: %w", err)
	}

	rec := &containerRecord{
		ID:         id,
		Name:       name,
		SandboxID:  sb.ID,
		Config:     config,
		ImageRef:   img.ID,
		ImageName:  config.GetImage().GetImage(),
		State:      runtimeapi.ContainerState_CONTAINER_CREATED,
		CreatedAt:  s.clock.Now().UnixNano(),
		CgroupPath: cgroupsPath(sb.CgroupParent, id),
	}
	if len(img.RepoDigests) > 0 {
		rec.RepoDigest = img.RepoDigests[0]
	}
	if len(img.RepoTags) > 0 {
		rec.RepoTag = img.RepoTags[0]
	}
	if img.Config != nil {
		rec.StopSignal = img.Config.Config.StopSignal
	}
	if d, p := sandboxConfig.GetLogDirectory(), config.GetLogPath(); d != "" && p != "" {
		rec.LogPath = filepath.Join(d, p)
		if err := os.MkdirAll(filepath.Dir(rec.LogPath), 0o755); err != nil {
			return "", fmt.Errorf("create container log directory: %w", err)
		}
	}

	spec, err := s.containerSpec(ctx, rec, &sb, img, rootfs)
	if err != nil {
		return "", err
	}
	if err := oci.WriteBundle(dir, spec); err != nil {
		return "", fmt.Errorf("write container bundle: %w", err)
	}

	// The monitor runs `runc create`; from here on a failure must kill and
	// delete the created container and wait for the monitor to go.
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if err := s.cfg.Runc.Delete(cctx, id, true); err != nil {
				log.Error("rollback: delete container", "error", err)
			}
			if rec.MonitorPID > 0 {
				if err := waitProcessGone(cctx, rec.MonitorPID, rec.MonitorStartTime); err != nil {
					log.Error("rollback: wait for monitor", "pid", rec.MonitorPID, "error", err)
				}
			}
		}
	}()
	h, err := monitor.Start(ctx, s.monitorConfig(), monitor.Params{
		ID:       id,
		Bundle:   dir,
		LogPath:  rec.LogPath,
		ExitFile: filepath.Join(dir, "exit"),
		PidFile:  filepath.Join(dir, "pid"),
		// The monitor holds stdin open for Attach and gives the process a
		// terminal (the spec's process.terminal is set to match).
		Stdin:     config.GetStdin(),
		StdinOnce: config.GetStdinOnce(),
		Tty:       config.GetTty(),
	})
	if err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	rec.MonitorPID, rec.MonitorStartTime, rec.Pid = h.PID, h.StartTime, h.ContainerPID

	exited := make(chan struct{})
	s.mu.Lock()
	err = s.store.putContainer(rec)
	if err == nil {
		s.containers[id] = rec
		s.exited[id] = exited
	}
	s.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("record container: %w", err)
	}
	s.watchExit(h.PID, h.StartTime, id)
	s.emit(id, sb.ID, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	log.Info("container created", "pid", h.ContainerPID, "image", img.ID)
	return id, nil
}

func (s *Service) monitorConfig() monitor.Config {
	return monitor.Config{Binary: s.cfg.MonitorBinary, RuncBinary: s.cfg.Runc.Binary, RuncRoot: s.cfg.Runc.Root}
}
