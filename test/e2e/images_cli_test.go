package e2e

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/peapod-dev/peapod/internal/testimage"
)

// TestImageCLI drives `peapod image` against a running daemon: pull, inspect,
// ls, load of docker-archive and OCI-layout tarballs (written with
// go-containerregistry and with skopeo), rm refused while a pod's container
// uses the image, prune keeping it.
func TestImageCLI(t *testing.T) {
	d := imgDaemon(t)
	skopeo := testimage.RequireBinary(t, "skopeo", "skopeo")
	local := testimage.Registry(t)
	d.imgPlainHTTP(local)
	tmp := t.TempDir()

	pulled := imgBuild(t, testimage.WithFiles(map[string]string{"/etc/motd": "pulled\n"}), testimage.WithCmd("cat", "/etc/motd"))
	ref := testimage.Push(t, local, "team/cli:1", pulled)
	pulledID := configName(t, pulled)
	// On a terminal (script(1) gives it one) a status line shows progress and
	// is ended before the ID.
	scriptBin := testimage.RequireBinary(t, "script", "bsdutils")
	cmd := exec.Command(scriptBin, "-qec", filepath.Join(binDir, "peapod")+" --root "+d.root+" image pull "+ref, "/dev/null")
	tty, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("image pull on a terminal: %v\n%q", err, tty)
	}
	if !regexp.MustCompile(`^(\rpulling [12] layer\(s\): [^\r\n]+)+ \(100%\)\r\n` + regexp.QuoteMeta(pulledID) + `\r\n$`).Match(tty) {
		t.Errorf("image pull on a terminal wrote %q", tty)
	}
	if out := d.mustPeapod("image", "pull", ref); out != pulledID+"\n" {
		t.Errorf("image pull printed %q, want the image ID %s", out, pulledID)
	}
	var info struct {
		ID                    string
		RepoTags, RepoDigests []string
		Size                  int64
		Config                *v1.ConfigFile
		DiffIDs               []string
	}
	if err := json.Unmarshal([]byte(d.mustPeapod("image", "inspect", ref)), &info); err != nil {
		t.Fatalf("image inspect: %v", err)
	}
	if info.ID != pulledID || len(info.RepoTags) != 1 || info.RepoTags[0] != ref || len(info.RepoDigests) != 1 ||
		len(info.DiffIDs) != 2 || info.Size <= 0 || info.Config == nil || strings.Join(info.Config.Config.Cmd, " ") != "cat /etc/motd" {
		t.Errorf("image inspect: %+v", info)
	}

	// docker-archive and OCI layout tarballs made with go-containerregistry.
	docker := imgBuild(t, testimage.WithFiles(map[string]string{"/etc/motd": "docker\n"}))
	dockerTar := filepath.Join(tmp, "docker.tar")
	tag, err := name.NewTag("example.com/team/docker:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(dockerTar, tag, docker); err != nil {
		t.Fatal(err)
	}
	if out := d.mustPeapod("image", "load", dockerTar); out != "Loaded "+configName(t, docker)+" example.com/team/docker:1\n" {
		t.Errorf("load docker-archive: %q", out)
	}
	oci := imgBuild(t, testimage.WithFiles(map[string]string{"/etc/motd": "oci\n"}), testimage.WithOCIMediaTypes())
	ociDir := filepath.Join(tmp, "oci")
	p, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(oci, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "example.com/team/oci:1"})); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(tmp, "oci.tar")
	if out, err := exec.Command("tar", "-C", ociDir, "-cf", ociTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar the OCI layout: %v\n%s", err, out)
	}
	if out := d.mustPeapod("image", "load", ociTar); out != "Loaded "+configName(t, oci)+" example.com/team/oci:1\n" {
		t.Errorf("load OCI layout: %q", out)
	}

	// What skopeo writes, from the local registry: the pulled image under new names.
	for _, dest := range []struct{ transport, name string }{
		{"docker-archive", "example.com/team/skopeo:docker"},
		{"oci-archive", "example.com/team/skopeo:oci"},
	} {
		file := filepath.Join(tmp, dest.transport+".tar")
		cmd := exec.Command(skopeo, "copy", "--src-tls-verify=false", "docker://"+ref, dest.transport+":"+file+":"+dest.name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		if out := d.mustPeapod("image", "load", file); !strings.HasPrefix(out, "Loaded sha256:") || !strings.HasSuffix(out, " "+dest.name+"\n") {
			t.Errorf("load skopeo %s: %q", dest.transport, out)
		}
		// skopeo may rewrite the config (a new ID) but never the layers.
		var got struct{ DiffIDs []string }
		if err := json.Unmarshal([]byte(d.mustPeapod("image", "inspect", dest.name)), &got); err != nil ||
			strings.Join(got.DiffIDs, ",") != strings.Join(info.DiffIDs, ",") {
			t.Errorf("skopeo %s image has layers %v (%v), want %v", dest.transport, got.DiffIDs, err, info.DiffIDs)
		}
	}
	ls := d.mustPeapod("image", "ls")
	for _, want := range []string{local + "/team/cli", "example.com/team/docker", "example.com/team/oci", "example.com/team/skopeo"} {
		if !strings.Contains(ls, want) {
			t.Errorf("image ls lacks %s:\n%s", want, ls)
		}
	}

	// A pod uses the docker-archive image (example.com is never contacted: Never).
	d.imgCreate(imgPod("user", "example.com/team/docker:1", "Never", "cat /etc/motd"))
	d.waitPod("default", "user", 90*time.Second, "Running", running)
	d.imgWaitLog("user", "docker\n")
	if out, err := d.peapod("image", "rm", "example.com/team/docker:1"); err == nil || !strings.Contains(out, "is used by container") {
		t.Errorf("image rm of a used image: %v\n%s", err, out)
	}
	out := d.mustPeapod("image", "prune")
	for _, id := range []string{pulledID, configName(t, oci)} {
		if !strings.Contains(out, "Deleted "+id) {
			t.Errorf("prune did not delete %s:\n%s", id, out)
		}
	}
	if strings.Contains(out, configName(t, docker)) {
		t.Errorf("prune deleted the image a container uses:\n%s", out)
	}
	if ls := d.mustPeapod("image", "ls"); !strings.Contains(ls, "example.com/team/docker") || strings.Contains(ls, "example.com/team/oci") {
		t.Errorf("image ls after prune:\n%s", ls)
	}

	d.mustKubectl("delete", "pod", "user", "--grace-period=1")
	d.waitGone("default", "user", 60*time.Second)
	if out := d.mustPeapod("image", "rm", "example.com/team/docker:1"); out != "Deleted "+configName(t, docker)+"\n" {
		t.Errorf("image rm: %q", out)
	}
	d.mustPeapod("image", "prune")
	for _, dir := range []string{"blobs/sha256", "layers/sha256", "tmp"} {
		if ents, err := os.ReadDir(filepath.Join(d.root, "images", dir)); err != nil || len(ents) != 0 {
			t.Errorf("images/%s after rm and prune: %d entries, %v", dir, len(ents), err)
		}
	}
	d.assertNoLeaks()
}

// TestImageDaemonKilledDuringPull kills the daemon (SIGKILL) while it
// downloads a pod's image; the restarted daemon pulls it again and runs the pod.
func TestImageDaemonKilledDuringPull(t *testing.T) {
	d := imgDaemon(t)
	big := make([]byte, 16<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	img := imgBuild(t, testimage.WithFiles(map[string]string{"/big": string(big), "/etc/motd": "survived\n"}))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bigDigest, err := layers[len(layers)-1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	host, started := slowBlobRegistry(t, bigDigest.String())
	d.imgPlainHTTP(host)
	ref := testimage.Push(t, host, "team/big:1", img)

	d.imgCreate(imgPod("big", ref, "", "cat /etc/motd"))
	select {
	case <-started:
	case <-time.After(90 * time.Second):
		t.Fatal("the daemon never fetched the image's big layer")
	}
	d.cmd.Process.Kill()
	<-d.done
	d.cmd = nil
	d.start()
	d.waitPod("default", "big", 120*time.Second, "Running", running)
	d.imgWaitLog("big", "survived\n")
	if ents, err := os.ReadDir(filepath.Join(d.root, "images", "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("images/tmp after the restart and pull: %d entries, %v", len(ents), err)
	}
	d.mustKubectl("delete", "pod", "big", "--grace-period=1")
	d.waitGone("default", "big", 60*time.Second)
	d.assertNoLeaks()
}

// slowBlobRegistry is go-containerregistry's registry serving the blob with
// the given digest slowly the first time it is asked for; started is closed
// when that first download begins.
func slowBlobRegistry(t *testing.T, digest string) (string, <-chan struct{}) {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	started := make(chan struct{})
	var first atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+digest) && first.CompareAndSwap(false, true) {
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			close(started)
			body := rec.Body.Bytes()
			for len(body) > 0 {
				n := min(len(body), 64<<10)
				if _, err := w.Write(body[:n]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				body = body[n:]
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), started
}

func (d *daemon) mustPeapod(args ...string) string {
	d.t.Helper()
	out, err := d.peapod(args...)
	if err != nil {
		d.t.Fatalf("peapod %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// configName is the image's ID: its config's digest.
func configName(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}
