package criimage

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/image"
)

// PullImage pulls the image with the request's credentials, which (as in
// containerd) go only to the registry their server_address names, and
// returns its ID.
func (s *Service) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	var o image.PullOptions
	if a := req.GetAuth(); a != nil {
		o.Auth = &authn.AuthConfig{
			Username:      a.GetUsername(),
			Password:      a.GetPassword(),
			Auth:          a.GetAuth(),
			IdentityToken: a.GetIdentityToken(),
			RegistryToken: a.GetRegistryToken(),
		}
		o.AuthServer = a.GetServerAddress()
	}
	img, err := s.store.Pull(ctx, ref, o)
	if err != nil {
		// The store's error names the reference ("pull REF: …").
		return nil, grpcError(err, "")
	}
	return &runtimeapi.PullImageResponse{ImageRef: img.ID}, nil
}
