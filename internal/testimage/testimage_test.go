package testimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// readTar returns the headers and regular file contents of a tarball, by name.
func readTar(t *testing.T, r io.Reader) (map[string]*tar.Header, map[string]string, []string) {
	t.Helper()
	headers, files := map[string]*tar.Header{}, map[string]string{}
	var order []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return headers, files, order
		}
		if err != nil {
			t.Fatalf("read tarball: %v", err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if _, dup := headers[name]; dup {
			t.Errorf("tarball holds %q twice", name)
		}
		headers[name] = h
		order = append(order, name)
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s: %v", h.Name, err)
			}
			files[name] = string(data)
		}
	}
}

func TestRootfsTar(t *testing.T) {
	RequireBinary(t, Busybox, "busybox-static")
	var buf bytes.Buffer
	if err := RootfsTar(&buf); err != nil {
		t.Fatal(err)
	}
	headers, files, order := readTar(t, bytes.NewReader(buf.Bytes()))

	if h := headers["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
		t.Fatalf("bin/busybox is %+v, want an executable regular file", h)
	}
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		t.Fatal(err)
	}
	applets := strings.Fields(string(out))
	if len(applets) < 100 {
		t.Fatalf("busybox lists only %d applets", len(applets))
	}
	for _, a := range applets {
		if a == "bin/busybox" {
			continue // busybox lists itself
		}
		if h := headers[a]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Errorf("applet %s is %+v, want a symlink to /bin/busybox", a, h)
		}
	}
	for dir, mode := range map[string]int64{"tmp": 0o1777, "proc": 0o755, "sys": 0o755, "dev": 0o755, "etc": 0o755, "root": 0o700, "var": 0o755, "home": 0o755, "usr/bin": 0o755} {
		if h := headers[dir]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != mode {
			t.Errorf("%s is %+v, want a directory with mode %o", dir, h, mode)
		}
	}
	if !strings.HasPrefix(files["etc/passwd"], "root:x:0:0:") || !strings.Contains(files["etc/passwd"], "\nnobody:x:65534:65534:") {
		t.Errorf("etc/passwd = %q, want root and nobody", files["etc/passwd"])
	}
	if !strings.HasPrefix(files["etc/group"], "root:x:0:") {
		t.Errorf("etc/group = %q, want root", files["etc/group"])
	}
	seen := map[string]bool{}
	for _, n := range order {
		if parent := n[:max(strings.LastIndex(n, "/"), 0)]; parent != "" && !seen[parent] {
			t.Errorf("%s comes before its directory %s", n, parent)
		}
		seen[n] = true
		if h := headers[n]; !h.ModTime.Equal(ModTime) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s has mtime %v, owner %d:%d; want %v, 0:0", n, h.ModTime, h.Uid, h.Gid, ModTime)
		}
	}

	var again bytes.Buffer
	if err := RootfsTar(&again); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(buf.Bytes()) != sha256.Sum256(again.Bytes()) {
		t.Error("RootfsTar gives different bytes each time")
	}
}

func TestLayerRejectsBadEntries(t *testing.T) {
	for _, e := range []Entry{
		{Path: "../escape"},
		{Path: "/"},
		{Path: "link", Type: tar.TypeSymlink},
		{Path: "fifo", Type: tar.TypeFifo},
	} {
		if _, err := Layer(e); !errors.Is(err, ErrBadEntry) {
			t.Errorf("Layer(%+v) = %v, want ErrBadEntry", e, err)
		}
	}
}

func TestImageRoundTripsThroughRegistry(t *testing.T) {
	RequireBinary(t, Busybox, "busybox-static")
	img, err := Image(
		WithCmd("httpd", "-f"),
		WithEntrypoint("/bin/sh", "-c"),
		WithEnv(DefaultPath, "GREETING=hi"),
		WithWorkingDir("/srv"),
		WithUser("65534:65534"),
		WithStopSignal("SIGQUIT"),
		WithFiles(map[string]string{"/srv/index.html": "hello\n", "etc/motd": "motd\n"}),
		WithEntries(Entry{Path: "srv/run.sh", Content: "#!/bin/sh\n", Mode: 0o755}, OpaqueWhiteout("/home")),
		WithWhiteouts("/etc/motd", "bin/vi"),
	)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Image(
		WithCmd("httpd", "-f"),
		WithEntrypoint("/bin/sh", "-c"),
		WithEnv(DefaultPath, "GREETING=hi"),
		WithWorkingDir("/srv"),
		WithUser("65534:65534"),
		WithStopSignal("SIGQUIT"),
		WithFiles(map[string]string{"etc/motd": "motd\n", "/srv/index.html": "hello\n"}),
		WithEntries(Entry{Path: "srv/run.sh", Content: "#!/bin/sh\n", Mode: 0o755}, OpaqueWhiteout("/home")),
		WithWhiteouts("/etc/motd", "bin/vi"),
	)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := again.Digest(); err != nil || d != want {
		t.Fatalf("the same options gave digests %v and %v (%v)", want, d, err)
	}

	host := Registry(t)
	ref := Push(t, host, "test/busybox:v1", img)
	if ref != host+"/test/busybox:v1" {
		t.Errorf("Push returned %q", ref)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if d, err := pulled.Digest(); err != nil || d != want {
		t.Fatalf("pulled digest %v (%v), pushed %v", d, err, want)
	}

	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	wantConfig := v1.Config{
		Cmd:        []string{"httpd", "-f"},
		Entrypoint: []string{"/bin/sh", "-c"},
		Env:        []string{DefaultPath, "GREETING=hi"},
		WorkingDir: "/srv",
		User:       "65534:65534",
		StopSignal: "SIGQUIT",
	}
	if !reflect.DeepEqual(cf.Config, wantConfig) {
		t.Errorf("config %+v, want %+v", cf.Config, wantConfig)
	}

	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 4 || len(cf.RootFS.DiffIDs) != 4 {
		t.Fatalf("%d layers, %d diff IDs; want 4", len(layers), len(cf.RootFS.DiffIDs))
	}
	contents := make([]map[string]string, len(layers))
	headers := make([]map[string]*tar.Header, len(layers))
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		headers[i], contents[i], _ = readTar(t, rc)
		rc.Close()
	}
	if headers[0]["bin/busybox"] == nil || headers[0]["bin/sh"] == nil {
		t.Error("the bottom layer lacks busybox")
	}
	if contents[1]["srv/index.html"] != "hello\n" || contents[1]["etc/motd"] != "motd\n" || headers[1]["srv"] == nil {
		t.Errorf("files layer holds %v", contents[1])
	}
	if h := headers[2]["srv/run.sh"]; h == nil || h.Mode != 0o755 || headers[2]["home/.wh..wh..opq"] == nil {
		t.Errorf("entries layer holds %v", headers[2])
	}
	if headers[3]["etc/.wh.motd"] == nil || headers[3]["bin/.wh.vi"] == nil {
		t.Errorf("whiteout layer holds %v", headers[3])
	}
}

func TestDefaultImageConfig(t *testing.T) {
	RequireBinary(t, Busybox, "busybox-static")
	img, err := Image()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{Env: []string{DefaultPath}, Cmd: []string{"sh"}}
	if !reflect.DeepEqual(cf.Config, want) {
		t.Errorf("default config %+v, want %+v", cf.Config, want)
	}
	if n := len(cf.RootFS.DiffIDs); n != 1 {
		t.Errorf("default image has %d layers, want 1", n)
	}
}

func TestRootfsRuns(t *testing.T) {
	RequireRoot(t)
	RequireBinary(t, Busybox, "busybox-static")
	tarBin := RequireBinary(t, "tar", "tar")
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := RootfsTar(&buf); err != nil {
		t.Fatal(err)
	}
	untar := exec.Command(tarBin, "-x", "-C", dir)
	untar.Stdin = &buf
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("extract rootfs: %v: %s", err, out)
	}
	sh := exec.Command("/bin/sh", "-c", "id -un; ls -d /tmp; echo $PATH")
	sh.Env = []string{DefaultPath}
	sh.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("run sh in the rootfs: %v: %s", err, out)
	}
	if want := "root\n/tmp\n" + strings.TrimPrefix(DefaultPath, "PATH=") + "\n"; string(out) != want {
		t.Errorf("sh in the rootfs printed %q, want %q", out, want)
	}
}

func TestOCIImage(t *testing.T) {
	RequireBinary(t, Busybox, "busybox-static")
	img, err := Image(WithOCIMediaTypes(), WithFiles(map[string]string{"a": "b"}))
	if err != nil {
		t.Fatal(err)
	}
	host := Registry(t)
	r, err := name.ParseReference(Push(t, host, "oci", img), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pulled.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("manifest %s with config %s, want OCI types", m.MediaType, m.Config.MediaType)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(m.Layers))
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s, want %s", l.MediaType, types.OCILayer)
		}
	}
}
