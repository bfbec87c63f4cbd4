package criruntime

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
	"github.com/peapod-dev/peapod/internal/oci"
)

const (
	runtimeName       = "peapod"
	runtimeAPIVersion = "v1"
	// kubeAPIVersion is the version the kubelet expects in VersionResponse.Version.
	kubeAPIVersion = "0.1.0"
)

// Version is set by the build (-ldflags -X) and reported by Version.
var Version = "0.1.0-dev"

// Version returns the runtime's name and versions.
func (s *Service) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    Version,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}

// Status reports the RuntimeReady and NetworkReady conditions: the runtime
// is ready when runc answers, the network when the CNI configuration and
// plugins are in place.
func (s *Service) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	if _, err := s.cfg.Runc.State(ctx, "peapod-status-probe"); err != nil && !errors.Is(err, oci.ErrNotExist) {
		runtimeCond.Status = false
		runtimeCond.Reason = "RuncNotReady"
		runtimeCond.Message = err.Error()
	}
	networkCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if s.cfg.Network == nil {
		networkCond.Status, networkCond.Reason, networkCond.Message = false, "NetworkPluginNotReady", "no CNI network manager configured"
	} else if err := s.cfg.Network.Status(); err != nil {
		networkCond.Status, networkCond.Reason, networkCond.Message = false, "NetworkPluginNotReady", err.Error()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{runtimeCond, networkCond}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{
			{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: s.rro, UserNamespaces: s.userns}},
			{Name: "runc", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: s.rro, UserNamespaces: s.userns}},
		},
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.GetVerbose() {
		resp.Info = map[string]string{"config": fmt.Sprintf(`{"root":%q,"runDir":%q,"runc":%q}`, s.cfg.Root, s.cfg.RunDir, s.cfg.Runc.Binary)}
	}
	return resp, nil
}

// RuntimeConfig reports the cgroup driver: peapod drives runc with cgroupfs paths.
func (s *Service) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

// UpdateRuntimeConfig accepts the node's pod CIDR. peapod's CNI network has
// its own subnet (internal/network), so the CIDR is only logged, as
// containerd does when it has no CNI config template to render.
func (s *Service) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	if cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		plog.FromContext(ctx).Info("pod CIDR ignored: the CNI network has its own subnet", "podCIDR", cidr)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
