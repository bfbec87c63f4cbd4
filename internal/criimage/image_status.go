package criimage

import (
	"context"
	"encoding/json"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// verboseInfo is what containerd returns under "info" for a verbose status.
type verboseInfo struct {
	ImageSpec *v1.ConfigFile `json:"imageSpec"`
	DiffIDs   []string       `json:"diffIDs"`
}

// ImageStatus returns the image, or a nil image (not an error) when absent.
func (s *Service) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	img, err := s.lookup(req.GetImage())
	if err != nil || img == nil {
		return &runtimeapi.ImageStatusResponse{}, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRI(img)}
	if req.GetVerbose() {
		data, err := json.Marshal(verboseInfo{ImageSpec: img.Config, DiffIDs: img.DiffIDs})
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode image info: %v", err)
		}
		resp.Info = map[string]string{"info": string(data)}
	}
	return resp, nil
}
