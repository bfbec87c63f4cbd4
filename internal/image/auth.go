package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfig is the part of a docker config.json (or podman auth.json) that
// holds static credentials; credential helpers are not run.
type dockerConfig struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// credentials returns the credentials the auth files hold for registry host
// (host[:port]), the first file that has any winning; nil when none do.
func credentials(files []string, host string) (*authn.AuthConfig, error) {
	want := canonicalHost(host)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read registry credentials: %w", err)
		}
		var cfg dockerConfig
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("read registry credentials %s: %w", f, err)
		}
		for key, a := range cfg.Auths {
			if canonicalHost(key) == want {
				a := a
				return &a, nil
			}
		}
	}
	return nil, nil
}

// canonicalHost reduces a config.json key ("https://index.docker.io/v1/",
// "quay.io", "http://127.0.0.1:5000/v2") to a host, with Docker Hub's many
// names as one.
func canonicalHost(key string) string {
	if !strings.Contains(key, "://") {
		key = "https://" + key
	}
	h := key
	if u, err := url.Parse(key); err == nil && u.Host != "" {
		h = u.Host
	}
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return h
}
