package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/peapod-dev/peapod/internal/image/hosts"
	"github.com/peapod-dev/peapod/internal/log"
)

// PullOptions are the per-pull settings.
type PullOptions struct {
	// Auth, when set, is used for the hosts AuthServer names (CRI AuthConfig,
	// a pod's pull secret), or for every host when AuthServer is empty;
	// other hosts use their entry in the auth files, if any.
	Auth       *authn.AuthConfig
	AuthServer string
	// Progress, when set, is called as layer blobs arrive.
	Progress func(Progress)
}

// Platform is the platform pulls resolve multi-platform indexes to.
func Platform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	// Only 32-bit ARM indexes are routinely split by variant.
	if runtime.GOARCH == "arm" {
		p.Variant = cpuVariant()
	}
	return p
}

// Pull fetches ref from its registry (or the mirrors its hosts.toml names)
// and stores it. Concurrent pulls of the same reference download it once.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (*Image, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	key := norm
	if o.Auth != nil {
		data, _ := json.Marshal([]any{o.Auth, o.AuthServer})
		sum := sha256.Sum256(data)
		key += " " + hex.EncodeToString(sum[:])
	}
	v, err, _ := s.pulls.Do(key, func() (any, error) { return s.pull(ctx, norm, o) })
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return v.(*Image), nil
}

func (s *Store) pull(ctx context.Context, norm string, o PullOptions) (*Image, error) {
	r, err := name.ParseReference(norm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	registry, _ := splitRegistry(repository(r.Context()))
	endpoints, err := s.hosts.Hosts(registry)
	if err != nil {
		return nil, err
	}
	_, isDigest := r.(name.Digest)
	var usable []hosts.Host
	for _, h := range endpoints {
		if h.Can(hosts.CapPull) && (isDigest || h.Can(hosts.CapResolve)) {
			usable = append(usable, h)
		}
	}
	var errs []error
	for i, h := range usable {
		var ropts []remote.Option
		if i < len(usable)-1 {
			// Another host waits: retry transient failures briefly, then move on.
			ropts = append(ropts, remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}))
		}
		img, err := s.pullFrom(ctx, h, r, o, ropts...)
		if err == nil {
			return img, nil
		}
		errs = append(errs, fmt.Errorf("%s://%s: %w", h.Scheme, h.Address, err))
		if ctx.Err() != nil {
			break
		}
		if i < len(usable)-1 {
			log.FromContext(ctx).Info("pull from host failed, trying the next", "image", norm, "host", h.Address, "error", err)
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no host configured for %s may pull it", registry)
	}
	return nil, hostErrors(errs)
}

// hostErrors is every host's failure on one line (it ends up in a pod's
// waiting message), still matched by errors.Is.
type hostErrors []error

func (e hostErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e hostErrors) Unwrap() []error { return e }

// splitRegistry splits "docker.io/library/busybox" into registry and path.
func splitRegistry(repo string) (string, string) {
	registry, path, _ := strings.Cut(repo, "/")
	return registry, path
}

func (s *Store) pullFrom(ctx context.Context, h hosts.Host, r name.Reference, o PullOptions, extra ...remote.Option) (*Image, error) {
	repo := repository(r.Context())
	_, path := splitRegistry(repo)
	var opts []name.Option
	if h.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	var at name.Reference
	var err error
	if d, ok := r.(name.Digest); ok {
		at, err = name.NewDigest(h.Address+"/"+path+"@"+d.DigestStr(), opts...)
	} else {
		at, err = name.NewTag(h.Address+"/"+path+":"+r.Identifier(), opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	tr, err := h.Transport()
	if err != nil {
		return nil, err
	}
	auth := authn.Anonymous
	if o.Auth != nil && (o.AuthServer == "" || canonicalHost(o.AuthServer) == canonicalHost(h.Address)) {
		auth = authn.FromConfig(*o.Auth)
	} else if cred, err := credentials(s.authFiles, h.Address); err != nil {
		return nil, err
	} else if cred != nil {
		auth = authn.FromConfig(*cred)
	}
	ropts := append([]remote.Option{remote.WithContext(ctx), remote.WithTransport(tr), remote.WithAuth(auth), remote.WithPlatform(Platform())}, extra...)
	desc, err := remote.Get(at, ropts...)
	if err != nil {
		return nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	src, err := imageSource(img)
	if err != nil {
		return nil, err
	}
	// The repo digest names what the reference resolved to: the index for a
	// multi-platform image, as containerd reports it.
	src.digests = []string{repo + "@" + desc.Digest.String()}
	if _, ok := r.(name.Tag); ok {
		src.tags = []string{repo + ":" + r.Identifier()}
	}
	src.progress = o.Progress
	if rawDigest := digestOf(desc.Manifest); rawDigest != desc.Digest.String() {
		return nil, fmt.Errorf("%w: manifest %s has digest %s", ErrDigestMismatch, desc.Digest, rawDigest)
	}
	img2, err := s.save(ctx, src)
	if err != nil {
		return nil, err
	}
	log.FromContext(ctx).Info("pulled image", "image", r.Name(), "from", h.Address, "id", img2.ID, "size", img2.Size)
	return img2, nil
}

// imageSource describes a go-containerregistry image whose blobs are kept
// as they are (compressed) with their manifest, each blob verified against
// the digest its parent names.
func imageSource(img v1.Image) (*source, error) {
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	mf, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if got := digestOf(rawConfig); got != mf.Config.Digest.String() {
		return nil, fmt.Errorf("%w: config %s has digest %s", ErrDigestMismatch, mf.Config.Digest, got)
	}
	src := &source{rawManifest: rawManifest, rawConfig: rawConfig}
	for _, d := range mf.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		src.layers = append(src.layers, layerSource{digest: d.Digest.String(), size: d.Size, open: l.Compressed})
	}
	return src, nil
}
