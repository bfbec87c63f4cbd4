package testimage

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultPath is the PATH the image's environment sets, as in Docker's busybox image.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Option changes the image Image makes.
type Option func(*build) error

type build struct {
	config v1.Config
	layers []v1.Layer
	oci    bool
}

// WithOCIMediaTypes makes an OCI image (manifest, config and layer media
// types) instead of the default Docker schema 2 one.
func WithOCIMediaTypes() Option {
	return func(b *build) error { b.oci = true; return nil }
}

// WithCmd sets the image's Cmd (default ["sh"]).
func WithCmd(cmd ...string) Option {
	return func(b *build) error { b.config.Cmd = cmd; return nil }
}

// WithEntrypoint sets the image's Entrypoint (default none).
func WithEntrypoint(entrypoint ...string) Option {
	return func(b *build) error { b.config.Entrypoint = entrypoint; return nil }
}

// WithEnv replaces the image's environment (default DefaultPath only);
// each element is NAME=VALUE.
func WithEnv(env ...string) Option {
	return func(b *build) error { b.config.Env = env; return nil }
}

// WithWorkingDir sets the image's working directory.
func WithWorkingDir(dir string) Option {
	return func(b *build) error { b.config.WorkingDir = dir; return nil }
}

// WithUser sets the image's user ("uid", "uid:gid", "name", …).
func WithUser(user string) Option {
	return func(b *build) error { b.config.User = user; return nil }
}

// WithStopSignal sets the image's stop signal ("SIGQUIT", "9", …).
func WithStopSignal(sig string) Option {
	return func(b *build) error { b.config.StopSignal = sig; return nil }
}

// WithLayer appends a layer on top of the busybox layer and earlier ones.
func WithLayer(l v1.Layer) Option {
	return func(b *build) error { b.layers = append(b.layers, l); return nil }
}

// WithEntries appends a layer holding entries (see Layer).
func WithEntries(entries ...Entry) Option {
	return func(b *build) error {
		l, err := Layer(entries...)
		if err != nil {
			return err
		}
		b.layers = append(b.layers, l)
		return nil
	}
}

// WithFiles appends a layer holding regular files, path → content, mode 0644.
func WithFiles(files map[string]string) Option {
	entries := make([]Entry, 0, len(files))
	for p, content := range files {
		entries = append(entries, Entry{Path: p, Content: content})
	}
	return WithEntries(entries...)
}

// WithWhiteouts appends a layer that deletes paths from the layers below.
func WithWhiteouts(paths ...string) Option {
	entries := make([]Entry, 0, len(paths))
	for _, p := range paths {
		entries = append(entries, Whiteout(p))
	}
	return WithEntries(entries...)
}

// Layer makes an image layer holding entries, with the parent directories
// they need (mode 0755, owned by root). Identical entries give identical digests.
func Layer(entries ...Entry) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, entries); err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	return layerFromBytes(buf.Bytes())
}

func layerFromBytes(data []byte) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	return l, nil
}

// busyboxLayer is the RootfsTar layer, made once: gzipping busybox for its
// digest is the slow part of Image, and the result never changes.
var busyboxLayer = sync.OnceValues(func() (v1.Layer, error) {
	var rootfs bytes.Buffer
	if err := RootfsTar(&rootfs); err != nil {
		return nil, fmt.Errorf("make busybox layer: %w", err)
	}
	return layerFromBytes(rootfs.Bytes())
})

// Image makes a busybox image: one layer from RootfsTar, Env DefaultPath,
// Cmd ["sh"], for this machine's platform (linux/GOARCH), changed by opts.
func Image(opts ...Option) (v1.Image, error) {
	b := &build{config: v1.Config{Env: []string{DefaultPath}, Cmd: []string{"sh"}}}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	base, err := busyboxLayer()
	if err != nil {
		return nil, err
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config:       b.config,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	var layerType types.MediaType
	if b.oci {
		img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
		layerType = types.OCILayer
	}
	adds := []mutate.Addendum{{Layer: base, MediaType: layerType}}
	for _, l := range b.layers {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: layerType})
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("add image layers: %w", err)
	}
	return img, nil
}
