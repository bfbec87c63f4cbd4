package criruntime

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus returns the status of a container.
func (s *Service) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	rec, err := s.getContainer(req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: containerStatus(&rec)}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{
			"pid":        rec.Pid,
			"monitorPid": rec.MonitorPID,
			"sandboxID":  rec.SandboxID,
			"cgroupPath": rec.CgroupPath,
			"name":       rec.Name,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func containerStatus(r *containerRecord) *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id:          r.ID,
		Metadata:    r.Config.GetMetadata(),
		State:       r.State,
		CreatedAt:   r.CreatedAt,
		StartedAt:   r.StartedAt,
		FinishedAt:  r.FinishedAt,
		ExitCode:    r.ExitCode,
		Image:       imageSpec(r),
		ImageRef:    imageRef(r),
		ImageId:     r.ImageRef,
		Reason:      r.Reason,
		Message:     r.Message,
		Labels:      r.Config.GetLabels(),
		Annotations: r.Config.GetAnnotations(),
		Mounts:      r.Config.GetMounts(),
		LogPath:     r.LogPath,
		Resources:   &runtimeapi.ContainerResources{Linux: r.Config.GetLinux().GetResources()},
	}
	groups := make([]int64, 0, len(r.Groups))
	for _, g := range r.Groups {
		groups = append(groups, int64(g))
	}
	st.User = &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: int64(r.UID), Gid: int64(r.GID), SupplementalGroups: groups}}
	if r.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		// Reason and message describe how a container ended (StartError is
		// recorded before the exit arrives).
		st.ExitCode, st.FinishedAt = 0, 0
	}
	return st
}

// imageSpec is the image's first tag (the kubelet passes the image ID in the
// config; containerd reports the tag, as dockershim did), else the name the
// config used.
func imageSpec(r *containerRecord) *runtimeapi.ImageSpec {
	name := r.ImageName
	if r.RepoTag != "" {
		name = r.RepoTag
	}
	return &runtimeapi.ImageSpec{
		Image:              name,
		Annotations:        r.Config.GetImage().GetAnnotations(),
		UserSpecifiedImage: r.Config.GetImage().GetUserSpecifiedImage(),
	}
}

// imageRef is the image's repo digest when it has one, else its ID, as the
// kubelet shows in containerStatuses[].imageID.
func imageRef(r *containerRecord) string {
	if r.RepoDigest != "" {
		return r.RepoDigest
	}
	return r.ImageRef
}
