// Package criimage serves the CRI v1 ImageService over the image store.
package criimage

import (
	"errors"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/peapod-dev/peapod/internal/image"
)

// Service implements runtimeapi.ImageServiceServer.
type Service struct {
	runtimeapi.UnimplementedImageServiceServer
	store *image.Store
	clock clock.PassiveClock
}

var _ runtimeapi.ImageServiceServer = (*Service)(nil)

// New returns the ImageService over store; clk stamps filesystem usage.
func New(store *image.Store, clk clock.PassiveClock) *Service {
	return &Service{store: store, clock: clk}
}

// toCRI fills a CRI Image as containerd does.
func toCRI(img *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Spec:        &runtimeapi.ImageSpec{Image: img.ID},
	}
	// containerd's getUserFromImage: "uid", "uid:gid" or "name[:group]".
	if user := img.Config.Config.User; user != "" {
		user, _, _ = strings.Cut(user, ":")
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}

// grpcError turns the store's errors into gRPC status errors at this edge,
// after msg unless the error already says what failed (msg "").
func grpcError(err error, msg string) error {
	code := codes.Unknown
	switch {
	case errors.Is(err, image.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, image.ErrInvalidName), errors.Is(err, image.ErrAmbiguous):
		code = codes.InvalidArgument
	}
	if msg == "" {
		return status.Error(code, err.Error())
	}
	return status.Errorf(code, "%s: %v", msg, err)
}

// lookup resolves a CRI image spec; a nil image and nil error mean absent.
func (s *Service) lookup(spec *runtimeapi.ImageSpec) (*image.Image, error) {
	ref := spec.GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "image spec has no image")
	}
	img, err := s.store.Resolve(ref)
	if errors.Is(err, image.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, grpcError(err, "resolve image "+ref)
	}
	return img, nil
}
