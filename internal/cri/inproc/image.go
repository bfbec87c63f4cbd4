package inproc

import (
	"context"

	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageService is a cri.ImageManagerService over an ImageServiceServer.
type ImageService struct {
	srv runtimeapi.ImageServiceServer
}

var _ cri.ImageManagerService = (*ImageService)(nil)

// NewImageService returns the kubelet's ImageManagerService interface over srv.
func NewImageService(srv runtimeapi.ImageServiceServer) *ImageService {
	return &ImageService{srv: srv}
}

func (i *ImageService) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	resp, err := i.srv.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: clone(filter)})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetImages(), nil
}

func (i *ImageService) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	resp, err := i.srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: clone(image), Verbose: verbose})
	return clone(resp), err
}

func (i *ImageService) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podSandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := i.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: clone(image), Auth: clone(auth), SandboxConfig: clone(podSandboxConfig)})
	if err != nil {
		return "", err
	}
	return resp.GetImageRef(), nil
}

func (i *ImageService) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error {
	_, err := i.srv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: clone(image)})
	return err
}

func (i *ImageService) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	resp, err := i.srv.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	return clone(resp), err
}

// Close does nothing: the server's lifetime belongs to whoever made it.
func (i *ImageService) Close(ctx context.Context) error { return nil }
