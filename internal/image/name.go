package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Normalize returns ref in the fully qualified form containerd and the kubelet
// use: "busybox" → "docker.io/library/busybox:latest". A digest reference keeps
// its digest and drops any tag ("repo@sha256:…").
func Normalize(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidName, ref, err)
	}
	repo := repository(r.Context())
	if d, ok := r.(name.Digest); ok {
		return repo + "@" + d.DigestStr(), nil
	}
	return repo + ":" + r.Identifier(), nil
}

// repository spells Docker Hub "docker.io" as the CRI does; go-containerregistry
// calls it "index.docker.io".
func repository(r name.Repository) string {
	reg := r.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + r.RepositoryStr()
}

// splitRef splits a normalized reference into repository and tag ("" for
// digest references), for listings.
func splitRef(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[:i], ""
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}
