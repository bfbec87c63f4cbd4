package criruntime

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStatus returns the status of a sandbox.
func (s *Service) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	sb.State = s.sandboxState(&sb)
	// Container statuses and a timestamp, as the kubelet's evented PLEG reads them.
	resp := &runtimeapi.PodSandboxStatusResponse{Status: sandboxStatus(&sb), Timestamp: s.clock.Now().UnixNano()}
	for _, c := range s.sandboxContainers(sb.ID) {
		resp.ContainersStatuses = append(resp.ContainersStatuses, containerStatus(&c))
	}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{
			"pid":          sb.Pid,
			"netnsPath":    sb.NetNSPath,
			"name":         sb.Name,
			"cgroupParent": sb.CgroupParent,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// sandboxState is the recorded state, NOTREADY once the pause process is
// gone (it may be killed from outside; the record is fixed on stop).
func (s *Service) sandboxState(sb *sandboxRecord) runtimeapi.PodSandboxState {
	if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY && !processAlive(sb.Pid, sb.PidStartTime) {
		return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}
	return sb.State
}

func sandboxStatus(sb *sandboxRecord) *runtimeapi.PodSandboxStatus {
	nsOpts := sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	st := &runtimeapi.PodSandboxStatus{
		Id:        sb.ID,
		Metadata:  sb.Config.GetMetadata(),
		State:     sb.State,
		CreatedAt: sb.CreatedAt,
		Network:   &runtimeapi.PodSandboxNetworkStatus{},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: nsOpts.GetNetwork(),
			Pid:     nsOpts.GetPid(),
			Ipc:     nsOpts.GetIpc(),
		}}},
		Labels:         sb.Config.GetLabels(),
		Annotations:    sb.Config.GetAnnotations(),
		RuntimeHandler: sb.RuntimeHandler,
	}
	// As containerd: the IP is reported only while the network is set up.
	if sb.NetworkReady && len(sb.IPs) > 0 {
		st.Network.Ip = sb.IPs[0]
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	return st
}
