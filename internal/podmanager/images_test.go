package podmanager

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestEnsureImageInvalidName(t *testing.T) {
	env := newTestEnv(t)
	pod := testPod("p", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "Busybox:1" })
	_, msg, err := env.m.ensureImageExists(context.Background(), pod, &pod.Spec.Containers[0])
	if err != ErrInvalidImageName || !strings.Contains(msg, `"Busybox:1"`) {
		t.Fatalf("err %v msg %q, want InvalidImageName", err, msg)
	}
	for _, c := range env.images.Called {
		if c == "PullImage" || c == "ImageStatus" {
			t.Errorf("the runtime was asked (%s) about an invalid name", c)
		}
	}
}

// A failed pull gives ErrImagePull with the runtime's message, then
// ImagePullBackOff that still carries it; a pull that works reports the size.
func TestEnsureImagePullErrorsAndSize(t *testing.T) {
	env := newTestEnv(t)
	env.images.SetFakeImages(nil)
	pod := testPod("p", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "127.0.0.1:5000/x:1" })
	c := &pod.Spec.Containers[0]
	env.images.InjectError("PullImage", errors.New("manifest unknown: no such tag"))
	_, msg, err := env.m.ensureImageExists(context.Background(), pod, c)
	if err != ErrImagePull || msg != "manifest unknown: no such tag" {
		t.Fatalf("err %v msg %q", err, msg)
	}
	_, msg, err = env.m.ensureImageExists(context.Background(), pod, c)
	if err != ErrImagePullBackOff || msg != `Back-off pulling image "127.0.0.1:5000/x:1": ErrImagePull: manifest unknown: no such tag` {
		t.Fatalf("err %v msg %q", err, msg)
	}
	env.clock.Step(backOffPeriod + 1)
	if _, msg, err = env.m.ensureImageExists(context.Background(), pod, c); err != nil {
		t.Fatalf("pull after the back-off: %v %s", err, msg)
	}
	var pulled string
	for _, e := range env.store.eventList() {
		if strings.Contains(e, " Pulled ") {
			pulled = e
		}
	}
	if !strings.Contains(pulled, `Successfully pulled image "127.0.0.1:5000/x:1" in `) || !strings.Contains(pulled, "Image size: ") {
		t.Errorf("Pulled event %q", pulled)
	}
}

// imagePullSecrets become CRI AuthConfigs for the image's registry only,
// the most specific first; a missing Secret is reported and skipped.
func TestEnsureImagePullSecrets(t *testing.T) {
	env := newTestEnv(t)
	env.images.SetFakeImages(nil)
	basic := base64.StdEncoding.EncodeToString([]byte("u:p"))
	env.objects.secrets["default/regcred"] = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred", Namespace: "default"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{
			"127.0.0.1:5000":{"username":"u","password":"p"},
			"http://127.0.0.1:5000/team":{"auth":"` + basic + `"},
			"127.0.0.1:5000/other":{"username":"no"},
			"quay.io":{"username":"no"}}}`)},
	}
	env.objects.secrets["default/hub"] = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "hub", Namespace: "default"},
		Type:       corev1.SecretTypeDockercfg,
		Data:       map[string][]byte{corev1.DockerConfigKey: []byte(`{"https://index.docker.io/v1/":{"username":"hub","password":"h"}}`)},
	}
	pod := testPod("p", func(p *corev1.Pod) {
		p.Spec.Containers[0].Image = "127.0.0.1:5000/team/app:1"
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "missing"}, {Name: "regcred"}, {Name: "hub"}}
	})
	auths := env.m.pullCredentials(context.Background(), pod, pod.Spec.Containers[0].Image)
	want := []*runtimeapi.AuthConfig{
		{Auth: basic, ServerAddress: "127.0.0.1:5000"},
		{Username: "u", Password: "p", ServerAddress: "127.0.0.1:5000"},
	}
	if len(auths) != len(want) {
		t.Fatalf("credentials %v, want %v", auths, want)
	}
	for i := range want {
		if auths[i].String() != want[i].String() {
			t.Errorf("credential %d = %v, want %v", i, auths[i], want[i])
		}
	}
	events := strings.Join(env.store.eventList(), "\n")
	if !strings.Contains(events, "FailedToRetrieveImagePullSecret Unable to retrieve some image pull secrets (missing)") {
		t.Errorf("events:\n%s", events)
	}
	if got := keyringLookup([]*corev1.Secret{env.objects.secrets["default/hub"]}, "busybox"); len(got) != 1 || got[0].Username != "hub" || got[0].ServerAddress != "docker.io" {
		t.Errorf("Docker Hub credential for busybox: %v", got)
	}

	// The first credential fails, the second works: the pull uses both in turn.
	rec := &authRecorder{ImageManagerService: env.images}
	env.m.images = rec
	env.images.InjectError("PullImage", errors.New("unauthorized"))
	if _, msg, err := env.m.ensureImageExists(context.Background(), pod, &pod.Spec.Containers[0]); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if len(rec.auths) != 2 || rec.auths[0].String() != want[0].String() || rec.auths[1].String() != want[1].String() {
		t.Errorf("pulls with %v, want %v", rec.auths, want)
	}
}

type authRecorder struct {
	cri.ImageManagerService
	auths []*runtimeapi.AuthConfig
}

func (r *authRecorder) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sc *runtimeapi.PodSandboxConfig) (string, error) {
	r.auths = append(r.auths, auth)
	return r.ImageManagerService.PullImage(ctx, spec, auth, sc)
}

// A failing pull is retried after the worker's fixed 10 s while the image
// back-off doubles, so the pod shows ErrImagePull, then a growing run of
// ImagePullBackOff between pulls, as under the kubelet.
func TestImagePullRetriesAlternate(t *testing.T) {
	pod := testPod("p", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "127.0.0.1:5000/x:1" })
	env := newTestEnv(t, pod)
	env.images.SetFakeImages(nil)
	var reasons []string
	for range 7 {
		env.images.InjectError("PullImage", errors.New("unreachable"))
		env.sync(t, pod.UID)
		reasons = append(reasons, env.store.pod(pod.UID).Status.ContainerStatuses[0].State.Waiting.Reason)
		env.m.mu.Lock()
		next := env.m.pods[pod.UID].requeueAt.Sub(env.clock.Now())
		env.m.mu.Unlock()
		if next != backOffPeriod {
			t.Fatalf("requeued in %v, want %v", next, backOffPeriod)
		}
		env.clock.Step(next)
	}
	want := "ErrImagePull ErrImagePull ImagePullBackOff ErrImagePull ImagePullBackOff ImagePullBackOff ImagePullBackOff"
	if got := strings.Join(reasons, " "); got != want {
		t.Errorf("reasons every 10 s: %s\nwant %s", got, want)
	}
}
