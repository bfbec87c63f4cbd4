package criruntime

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The RPCs below are not implemented yet. Each is written out so that none
// is answered silently by the embedded UnimplementedRuntimeServiceServer.

func unimplemented(rpc string) error {
	return status.Errorf(codes.Unimplemented, "peapod does not implement %s yet", rpc)
}

func (s *Service) CheckpointContainer(context.Context, *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	return nil, unimplemented("CheckpointContainer")
}

func (s *Service) CheckpointPod(context.Context, *runtimeapi.CheckpointPodRequest) (*runtimeapi.CheckpointPodResponse, error) {
	return nil, unimplemented("CheckpointPod")
}

func (s *Service) RestorePod(context.Context, *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	return nil, unimplemented("RestorePod")
}
