package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// The images pods name in these tests come only from registries on
// 127.0.0.1: each one's certs.d/<host>/hosts.toml names it as plain HTTP, and
// registry.k8s.io and docker.io are redirected to a local one with no fallback.

// TestImagePullPolicies runs pods whose images are pulled from go-containerregistry's
// registry and from Debian's docker-registry, and checks the kubelet's pull
// policies, waiting reasons and events as kubectl shows them.
func TestImagePullPolicies(t *testing.T) {
	d := imgDaemon(t)
	local := testimage.Registry(t)
	dist := testimage.Distribution(t)
	d.imgPlainHTTP(local)
	d.imgPlainHTTP(dist)

	// A multi-layer image with whiteouts, from docker-registry.
	layered := imgBuild(t,
		testimage.WithFiles(map[string]string{"/etc/motd": "layer two\n", "/etc/gone": "x"}),
		testimage.WithWhiteouts("/etc/gone", "/bin/ls"),
		testimage.WithEntries(testimage.Entry{Path: "/data/old", Content: "old"}),
		testimage.WithEntries(testimage.OpaqueWhiteout("/data"), testimage.Entry{Path: "/data/new", Content: "new"}),
	)
	ref := testimage.Push(t, dist, "team/layers:1", layered)
	d.imgCreate(imgPod("layers", ref, "", `cat /etc/motd; ls /data; test -e /etc/gone || echo gone-hidden; test -e /bin/ls || echo ls-hidden`))
	d.waitPod("default", "layers", 90*time.Second, "Running", running)
	d.imgWaitLog("layers", "layer two\nnew\ngone-hidden\nls-hidden\n")
	events := d.imgEvents("layers")
	if !strings.Contains(events, "Normal Pulling Pulling image \""+ref+"\"") ||
		!regexp.MustCompile(`Normal Pulled Successfully pulled image "`+regexp.QuoteMeta(ref)+`" in [0-9.]+m?s \([0-9.]+m?s including waiting\)\. Image size: [1-9][0-9]* bytes\.`).MatchString(events) {
		t.Errorf("events lack Pulling, or Pulled with duration and size:\n%s", events)
	}
	describe := d.mustKubectl("describe", "pod", "layers")
	if !strings.Contains(describe, "Successfully pulled image") || !strings.Contains(describe, "bytes.") {
		t.Errorf("kubectl describe pod shows no Pulled event with size and duration:\n%s", describe)
	}

	// A digest reference.
	dg, err := layered.Digest()
	if err != nil {
		t.Fatal(err)
	}
	byDigest := local + "/team/layers@" + dg.String()
	testimage.Push(t, local, "team/layers:1", layered)
	d.imgCreate(imgPod("digest", byDigest, "", "cat /etc/motd"))
	p := d.waitPod("default", "digest", 90*time.Second, "Running", running)
	if got := p.Status.ContainerStatuses[0].Image; got != byDigest {
		t.Errorf("status image %q, want %q", got, byDigest)
	}
	d.imgWaitLog("digest", "layer two\n")

	// imagePullPolicy Always pulls again: a pod made after the tag moved runs the new image.
	testimage.Push(t, local, "team/moving:v1", imgBuild(t, testimage.WithFiles(map[string]string{"/version": "one\n"})))
	movingRef := local + "/team/moving:v1"
	d.imgCreate(imgPod("always1", movingRef, corev1.PullAlways, "cat /version"))
	d.waitPod("default", "always1", 90*time.Second, "Running", running)
	d.imgWaitLog("always1", "one\n")
	testimage.Push(t, local, "team/moving:v1", imgBuild(t, testimage.WithFiles(map[string]string{"/version": "two\n"})))
	d.imgCreate(imgPod("always2", movingRef, corev1.PullAlways, "cat /version"))
	d.waitPod("default", "always2", 90*time.Second, "Running", running)
	d.imgWaitLog("always2", "two\n")
	if ev := d.imgEvents("always2"); !strings.Contains(ev, "Pulling image") {
		t.Errorf("Always: no Pulling event:\n%s", ev)
	}
	// IfNotPresent with the image present pulls nothing.
	d.imgCreate(imgPod("present", movingRef, corev1.PullIfNotPresent, "cat /version"))
	d.waitPod("default", "present", 90*time.Second, "Running", running)
	if ev := d.imgEvents("present"); !strings.Contains(ev, "already present on machine") || strings.Contains(ev, "Pulling") {
		t.Errorf("IfNotPresent with the image present:\n%s", ev)
	}

	// Never with a missing image.
	d.imgCreate(imgPod("never", local+"/team/absent:1", corev1.PullNever, "true"))
	d.imgWaitWaiting("never", "ErrImageNeverPull", "is not present with pull policy of Never")

	// A registry error: ErrImagePull, then ImagePullBackOff, both with the registry's message.
	missing := dist + "/team/layers:nosuchtag"
	d.imgCreate(imgPod("regerr", missing, "", "true"))
	d.imgWaitWaiting("regerr", "ErrImagePull", "MANIFEST_UNKNOWN")
	d.imgWaitWaiting("regerr", "ImagePullBackOff", "MANIFEST_UNKNOWN")
	if ev := d.imgEvents("regerr"); !strings.Contains(ev, "Warning Failed Failed to pull image \""+missing+"\"") || !strings.Contains(ev, "BackOff Back-off pulling image") {
		t.Errorf("registry error events:\n%s", ev)
	}

	// An invalid reference.
	d.imgCreate(imgPod("badname", "Team/UPPER:1", "", "true"))
	d.imgWaitWaiting("badname", "InvalidImageName", "Failed to apply default image tag")

	for _, pod := range []string{"layers", "digest", "always1", "always2", "present", "never", "regerr", "badname"} {
		d.mustKubectl("delete", "pod", pod, "--wait=false")
	}
	for _, pod := range []string{"layers", "digest", "always1", "always2", "present", "never", "regerr", "badname"} {
		d.waitGone("default", pod, 60*time.Second)
	}
	d.assertNoLeaks()
}

// TestImagePullCredentials pulls from a registry that requires basic auth,
// with a pod's imagePullSecrets and with ROOT/auth.json.
func TestImagePullCredentials(t *testing.T) {
	d := imgDaemon(t)
	host := imgAuthRegistry(t, "e2e", "s3cret")
	d.imgPlainHTTP(host)
	img := imgBuild(t, testimage.WithFiles(map[string]string{"/etc/motd": "private\n"}))
	for _, tag := range []string{"secret", "file"} {
		r, err := name.ParseReference(host+"/team/private:"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "e2e", Password: "s3cret"})); err != nil {
			t.Fatalf("push %s: %v", r, err)
		}
	}

	// Without credentials the registry's refusal is the pod's message.
	d.imgCreate(imgPod("anon", host+"/team/private:file", "", "cat /etc/motd"))
	d.imgWaitWaiting("anon", "ErrImagePull", "UNAUTHORIZED")

	// A kubernetes.io/dockerconfigjson Secret named by imagePullSecrets.
	basic := base64.StdEncoding.EncodeToString([]byte("e2e:s3cret"))
	secret := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"regcred"},"type":"kubernetes.io/dockerconfigjson",
		"data":{".dockerconfigjson":%q}}`, base64.StdEncoding.EncodeToString([]byte(`{"auths":{"http://`+host+`":{"auth":"`+basic+`"}}}`)))
	if out, err := d.kubectlStdin(secret, "create", "--validate=false", "-f", "-"); err != nil {
		t.Fatalf("create secret: %v\n%s", err, out)
	}
	pod := imgPod("withsecret", host+"/team/private:secret", "", "cat /etc/motd")
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	d.imgCreate(pod)
	d.waitPod("default", "withsecret", 90*time.Second, "Running", running)
	d.imgWaitLog("withsecret", "private\n")

	// ROOT/auth.json: the next pull of the refused pod works.
	auth := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, basic)
	if err := os.WriteFile(filepath.Join(d.root, "auth.json"), []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	d.imgCreate(imgPod("withfile", host+"/team/private:file", "", "cat /etc/motd"))
	d.waitPod("default", "withfile", 90*time.Second, "Running", running)
	d.imgWaitLog("withfile", "private\n")

	for _, pod := range []string{"anon", "withsecret", "withfile"} {
		d.mustKubectl("delete", "pod", pod, "--wait=false")
	}
	for _, pod := range []string{"anon", "withsecret", "withfile"} {
		d.waitGone("default", pod, 60*time.Second)
	}
	d.assertNoLeaks()
}

// TestImageAirGapped points registry.k8s.io and docker.io at a local registry
// with no fallback: pods naming public images run from it, and a missing one
// fails naming only the local host.
func TestImageAirGapped(t *testing.T) {
	d := imgDaemon(t)
	mirror := testimage.Registry(t)
	for _, upstream := range []string{"registry.k8s.io", "docker.io"} {
		d.imgWriteHosts(upstream, fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+mirror, "http://"+mirror))
	}
	testimage.Push(t, mirror, "e2e/pause:3.10", imgBuild(t, testimage.WithFiles(map[string]string{"/origin": "k8s\n"})))
	testimage.Push(t, mirror, "library/busybox:airgap", imgBuild(t, testimage.WithFiles(map[string]string{"/origin": "hub\n"})))

	d.imgCreate(imgPod("k8s", "registry.k8s.io/e2e/pause:3.10", "", "cat /origin"))
	d.imgCreate(imgPod("hub", "busybox:airgap", "", "cat /origin"))
	d.waitPod("default", "k8s", 90*time.Second, "Running", running)
	d.waitPod("default", "hub", 90*time.Second, "Running", running)
	d.imgWaitLog("k8s", "k8s\n")
	d.imgWaitLog("hub", "hub\n")

	d.imgCreate(imgPod("absent", "registry.k8s.io/e2e/absent:1", "", "true"))
	p := d.imgWaitWaiting("absent", "ErrImagePull", "http://"+mirror)
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; strings.Contains(msg, "https://registry.k8s.io") {
		t.Errorf("the pull reached out to registry.k8s.io: %s", msg)
	}
	out, err := d.peapod("image", "ls")
	if err != nil || !strings.Contains(out, "registry.k8s.io/e2e/pause") || !strings.Contains(out, "docker.io/library/busybox") {
		t.Errorf("image ls: %v\n%s", err, out)
	}

	for _, pod := range []string{"k8s", "hub", "absent"} {
		d.mustKubectl("delete", "pod", pod, "--wait=false")
	}
	for _, pod := range []string{"k8s", "hub", "absent"} {
		d.waitGone("default", pod, 60*time.Second)
	}
	d.assertNoLeaks()
}

// imgDaemon starts a daemon whose pods are all deleted when the test ends,
// even when it fails early: stopping the daemon leaves pods running.
func imgDaemon(t *testing.T) *daemon {
	d := startDaemon(t)
	t.Cleanup(func() {
		if _, err := d.kubectl("delete", "pods", "--all", "--grace-period=1", "--timeout=90s"); err != nil {
			t.Errorf("delete pods at cleanup: %v", err)
		}
	})
	return d
}

// imgPod is a one-container pod that runs script, then sleeps.
func imgPod(podName, image string, policy corev1.PullPolicy, script string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: podName},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "c", Image: image, ImagePullPolicy: policy,
				Command: []string{"sh", "-c", script + "; exec sleep 3600"},
			}},
		},
	}
}

func (d *daemon) imgCreate(p *corev1.Pod) {
	d.t.Helper()
	data, err := json.Marshal(p)
	if err != nil {
		d.t.Fatal(err)
	}
	if out, err := d.kubectlStdin(string(data), "create", "--validate=false", "-f", "-"); err != nil {
		d.t.Fatalf("kubectl create pod %s: %v\n%s", p.Name, err, out)
	}
}

// imgWaitWaiting waits until the pod's container waits for reason with a message containing msg.
func (d *daemon) imgWaitWaiting(pod, reason, msg string) *corev1.Pod {
	d.t.Helper()
	return d.waitPod("default", pod, 90*time.Second, "waiting with "+reason+" ("+msg+")", func(p *corev1.Pod) bool {
		if len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == reason && strings.Contains(w.Message, msg)
	})
}

// imgWaitLog waits until the pod's log is want.
func (d *daemon) imgWaitLog(pod, want string) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := d.kubectl("logs", pod)
		if err == nil && out == want {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("kubectl logs %s = %q (%v), want %q", pod, out, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// imgEvents returns the pod's events, one "type reason message" a line.
func (d *daemon) imgEvents(pod string) string {
	d.t.Helper()
	out := d.mustKubectl("get", "events", "--field-selector", "involvedObject.name="+pod, "-o", "json")
	var list corev1.EventList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.t.Fatalf("decode events: %v", err)
	}
	var b strings.Builder
	for _, e := range list.Items {
		fmt.Fprintf(&b, "%s %s %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

// imgWriteHosts writes ROOT/certs.d/<registry>/hosts.toml.
func (d *daemon) imgWriteHosts(registry, content string) {
	d.t.Helper()
	dir := filepath.Join(d.root, "certs.d", registry)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(content), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// imgPlainHTTP configures host as a plain-HTTP registry.
func (d *daemon) imgPlainHTTP(host string) {
	d.imgWriteHosts(host, fmt.Sprintf("server = %q\n", "http://"+host))
}

func imgBuild(t *testing.T, opts ...testimage.Option) v1.Image {
	t.Helper()
	img, err := testimage.Image(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imgAuthRegistry is go-containerregistry's registry behind HTTP basic auth.
func imgAuthRegistry(t *testing.T, user, password string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="peapod-e2e"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
