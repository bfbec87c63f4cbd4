package criimage

import (
	"context"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists every image, or only the one the filter names.
func (s *Service) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := s.list(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListImagesResponse{Images: imgs}, nil
}

// StreamImages sends the same list as ListImages, in one message: the store
// holds few enough images for that.
func (s *Service) StreamImages(req *runtimeapi.StreamImagesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	imgs, err := s.list(req.GetFilter())
	if err != nil {
		return err
	}
	if len(imgs) == 0 {
		return nil
	}
	return stream.Send(&runtimeapi.StreamImagesResponse{Images: imgs})
}

func (s *Service) list(filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if filter.GetImage().GetImage() != "" {
		img, err := s.lookup(filter.GetImage())
		if err != nil || img == nil {
			return nil, err
		}
		return []*runtimeapi.Image{toCRI(img)}, nil
	}
	imgs, err := s.store.List()
	if err != nil {
		return nil, grpcError(err, "list images")
	}
	out := make([]*runtimeapi.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, toCRI(img))
	}
	return out, nil
}
