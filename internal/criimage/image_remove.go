package criimage

import (
	"context"
	"errors"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/image"
	"github.com/peapod-dev/peapod/internal/log"
)

// RemoveImage removes the image with all its tags. An image that is already
// gone is not an error (the CRI requires RemoveImage to be idempotent).
func (s *Service) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	img, err := s.lookup(req.GetImage())
	if err != nil {
		return nil, err
	}
	if img == nil {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if err := s.store.Remove(img.ID); err != nil && !errors.Is(err, image.ErrNotFound) {
		return nil, grpcError(err, "remove image "+req.GetImage().GetImage())
	}
	log.FromContext(ctx).Info("removed image", "image", req.GetImage().GetImage(), "id", img.ID)
	return &runtimeapi.RemoveImageResponse{}, nil
}
