package podmanager

import (
	"context"
	"fmt"
	"strings"

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
// container from, or a message and ErrImageNeverPull, ErrImagePullBackOff,
// ErrImagePull or ErrImageInspect.
func (m *Manager) ensureImageExists(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (string, string, error) {
	image := c.Image
	spec := &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: image}
	resp, err := m.images.ImageStatus(ctx, spec, false)
	if err != nil {
		msg := fmt.Sprintf("Failed to inspect image %q: %v", image, err)
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailed, msg)
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
		return "", msg, ErrImagePullBackOff
	}
	m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventPulling, fmt.Sprintf("Pulling image %q", image))
	start := m.clock.Now()
	ref, err := m.images.PullImage(ctx, spec, nil, nil)
	if err != nil {
		m.imageBackOff.Next(key, m.clock.Now())
		msg := fmt.Sprintf("Failed to pull image %q: %v", image, err)
		m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailed, msg)
		return "", msg, ErrImagePull
	}
	m.imageBackOff.Reset(key)
	m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeNormal, eventPulled,
		fmt.Sprintf("Successfully pulled image %q in %s", image, m.clock.Since(start).Round(1e6)))
	if ref == "" {
		ref = image
	}
	return ref, "", nil
}

func imageRef(img *runtimeapi.Image, fallback string) string {
	if img.GetId() != "" {
		return img.Id
	}
	return fallback
}
