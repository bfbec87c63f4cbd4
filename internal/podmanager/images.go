package podmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pullPolicy returns the container's pull policy, defaulted as the API server
// does: Always for :latest or no tag, else IfNotPresent.
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	image := c.Image
	if i := strings.Index(image, "@"); i >= 0 {
		return corev1.PullIfNotPresent
	}
	tag := ""
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
		tag = image[i+1:]
	}
	if tag == "" || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// shouldPullImage is images.shouldPullImage.
func shouldPullImage(policy corev1.PullPolicy, present bool) bool {
	switch policy {
	case corev1.PullNever:
		return false
	case corev1.PullAlways:
		return true
	}
	return !present
}

// ensureImageExists is the kubelet's image manager EnsureImageExists: it
// applies the pull policy and returns the image reference to create the
// container from, or a message and ErrInvalidImageName, ErrImageNeverPull,
// ErrImagePullBackOff, ErrImagePull or ErrImageInspect.
func (m *Manager) ensureImageExists(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (string, string, error) {
	image := c.Image
	if _, err := name.ParseReference(image); err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", image, err)
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventInspectFailed, msg)
		return "", msg, ErrInvalidImageName
	}
	spec := &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: image}
	resp, err := m.images.ImageStatus(ctx, spec, false)
	if err != nil {
		msg := fmt.Sprintf("Failed to inspect image %q: %v", image, err)
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventInspectFailed, msg)
		return "", msg, ErrImageInspect
	}
	present := resp.GetImage() != nil
	policy := pullPolicy(c)
	if !shouldPullImage(policy, present) {
		if present {
			m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventPulled,
				fmt.Sprintf("Container image %q already present on machine", image))
			return imageRef(resp.GetImage(), image), "", nil
		}
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", image)
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, "ErrImageNeverPull", msg)
		return "", msg, ErrImageNeverPull
	}

	key := string(pod.UID) + "_" + image
	if m.imageBackOff.IsInBackOffSinceUpdate(key, m.clock.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", image)
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventBackOff, msg)
		// As the kubelet: the waiting message keeps the last pull's error.
		if prev, ok := m.prevPullErr.Load(key); ok {
			msg = fmt.Sprintf("%s: %s", msg, prev)
		}
		return "", msg, ErrImagePullBackOff
	}
	auths := m.pullCredentials(ctx, pod, image)
	m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventPulling, fmt.Sprintf("Pulling image %q", image))
	start := m.clock.Now()
	ref, err := m.pullImage(ctx, spec, auths)
	if err != nil {
		m.imageBackOff.Next(key, m.clock.Now())
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailed, fmt.Sprintf("Failed to pull image %q: %v", image, err))
		msg := err.Error()
		m.prevPullErr.Store(key, fmt.Sprintf("%s: %s", ErrImagePull, msg))
		return "", msg, ErrImagePull
	}
	m.imageBackOff.Reset(key)
	m.prevPullErr.Delete(key)
	took := m.clock.Since(start).Truncate(time.Millisecond)
	if ref == "" {
		ref = image
	}
	var size uint64
	if st, err := m.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false); err == nil {
		size = st.GetImage().GetSize()
	}
	// No queue of pulls here: the pull took all the time it waited.
	m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventPulled,
		fmt.Sprintf("Successfully pulled image %q in %v (%v including waiting). Image size: %d bytes.", image, took, took, size))
	return ref, "", nil
}

// pullImage is the kubelet's image puller: without credentials one anonymous
// pull, else each credential in turn until one works (all errors otherwise).
func (m *Manager) pullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auths []*runtimeapi.AuthConfig) (string, error) {
	if len(auths) == 0 {
		return m.images.PullImage(ctx, spec, nil, nil)
	}
	var errs []error
	for _, a := range auths {
		ref, err := m.images.PullImage(ctx, spec, a, nil)
		if err == nil {
			return ref, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// pullCredentials returns the credentials the pod's imagePullSecrets hold for
// the image's registry, the most specific first (the kubelet's keyring over
// kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg Secrets). Secrets
// that cannot be read are reported in an event and skipped, as the kubelet does.
func (m *Manager) pullCredentials(ctx context.Context, pod *corev1.Pod, image string) []*runtimeapi.AuthConfig {
	if len(pod.Spec.ImagePullSecrets) == 0 {
		return nil
	}
	var secrets []*corev1.Secret
	var failed []string
	og, err := m.objects()
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		if err != nil {
			failed = append(failed, ref.Name)
			continue
		}
		s, gerr := og.GetSecret(ctx, pod.Namespace, ref.Name)
		if gerr != nil {
			failed = append(failed, ref.Name)
			continue
		}
		secrets = append(secrets, s)
	}
	if len(failed) > 0 {
		m.recordEvent(ctx, pod, corev1.EventTypeWarning, "FailedToRetrieveImagePullSecret",
			fmt.Sprintf("Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(failed, ", ")))
	}
	return keyringLookup(secrets, image)
}

// dockerAuth is one entry of a docker config's "auths".
type dockerAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// keyringLookup matches the image against the registries the Secrets name:
// same host (Docker Hub's names as one), and the key's path, if any, a prefix
// of the image's repository; longer keys first.
func keyringLookup(secrets []*corev1.Secret, image string) []*runtimeapi.AuthConfig {
	r, err := name.ParseReference(image)
	if err != nil {
		return nil
	}
	host := registryHost(r.Context().RegistryStr())
	repo := r.Context().RepositoryStr()
	type match struct {
		key  string
		auth *runtimeapi.AuthConfig
	}
	var matches []match
	for _, s := range secrets {
		var auths map[string]dockerAuth
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			var cfg struct {
				Auths map[string]dockerAuth `json:"auths"`
			}
			if json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg) != nil {
				continue
			}
			auths = cfg.Auths
		case corev1.SecretTypeDockercfg:
			if json.Unmarshal(s.Data[corev1.DockerConfigKey], &auths) != nil {
				continue
			}
		default:
			continue
		}
		for key, a := range auths {
			khost, kpath := splitAuthKey(key)
			if khost != host || kpath != "" && repo != kpath && !strings.HasPrefix(repo, kpath+"/") {
				continue
			}
			matches = append(matches, match{key, &runtimeapi.AuthConfig{
				Username: a.Username, Password: a.Password, Auth: a.Auth,
				ServerAddress: khost, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
			}})
		}
	}
	sort.SliceStable(matches, func(i, j int) bool { return len(matches[i].key) > len(matches[j].key) })
	out := make([]*runtimeapi.AuthConfig, len(matches))
	for i, mt := range matches {
		out[i] = mt.auth
	}
	return out
}

// splitAuthKey splits a docker config key ("https://index.docker.io/v1/",
// "127.0.0.1:5000", "quay.io/team") into host and repository path.
func splitAuthKey(key string) (string, string) {
	if i := strings.Index(key, "://"); i >= 0 {
		key = key[i+3:]
	}
	host, path, _ := strings.Cut(key, "/")
	path = strings.Trim(path, "/")
	host = registryHost(host)
	if host == "docker.io" && (path == "v1" || path == "v2") {
		path = ""
	}
	return host, path
}

// registryHost spells Docker Hub's many host names as docker.io.
func registryHost(h string) string {
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return h
}

func imageRef(img *runtimeapi.Image, fallback string) string {
	if img.GetId() != "" {
		return img.Id
	}
	return fallback
}
