package server_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/peapod-dev/peapod/internal/cri/server"
	"github.com/peapod-dev/peapod/internal/criimage"
	"github.com/peapod-dev/peapod/internal/criruntime"
	"github.com/peapod-dev/peapod/internal/dirs"
	"github.com/peapod-dev/peapod/internal/image"
	"github.com/peapod-dev/peapod/internal/oci"
	"github.com/peapod-dev/peapod/internal/snapshot"
	"github.com/peapod-dev/peapod/internal/testimage"
)

// A client on the socket runs a host-network pod through the runtime and
// lists images through the image service.
func TestServeOverSocket(t *testing.T) {
	testimage.RequireRoot(t)
	runc := testimage.RequireBinary(t, "runc", "runc")
	bb := testimage.RequireBinary(t, "busybox", "busybox-static")

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../../cmd/peapod-pause", "../../../cmd/peapod-monitor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	d, err := dirs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d.Run) })
	imgs, err := image.Open(d.Images())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imgs.Import(context.Background(), bytes.NewReader(rootfs(t, bb)), "busybox"); err != nil {
		t.Fatal(err)
	}
	rt, err := criruntime.New(context.Background(), criruntime.Config{
		Root: d.Root, RunDir: d.Run,
		Runc:          &oci.Runc{Binary: runc, Root: d.RuncRoot()},
		MonitorBinary: filepath.Join(bin, "peapod-monitor"), PauseBinary: filepath.Join(bin, "peapod-pause"),
		Images: imgs, Snapshots: snapshot.New(d.Snapshots()),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()

	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(d.Run, "cri.sock")
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, sock, rt, criimage.New(imgs, clock.RealClock{}), func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left after Serve returned: %v", err)
		}
	}()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := runtimeapi.NewRuntimeServiceClient(conn)
	ic := runtimeapi.NewImageServiceClient(conn)

	v, err := rc.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "peapod" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version: %v %v", v, err)
	}
	imgList, err := ic.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(imgList.Images) != 1 {
		t.Fatalf("ListImages: %v %v", imgList, err)
	}
	st, err := rc.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Status.Conditions {
		// No network manager is configured here: only the runtime is ready.
		if want := c.Type == runtimeapi.RuntimeReady; c.Status != want {
			t.Errorf("condition %s = %v (%s)", c.Type, c.Status, c.Message)
		}
	}

	sbc := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "hostnet", Namespace: "default", Uid: "u1"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
		}},
	}
	sb, err := rc.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbc})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := rc.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
			t.Error(err)
		}
	}()
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sleep", "1000"},
	}
	c, err := rc.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: cc, SandboxConfig: sbc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	out, err := rc.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId, Cmd: []string{"hostname"}})
	if err != nil || strings.TrimSpace(string(out.Stdout)) != host {
		t.Errorf("hostname in a host-network pod: %q %v, want %q", out.GetStdout(), err, host)
	}
	if _, err := rc.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus of an unknown ID: %v", err)
	}
	// Exec is served (through the streaming server); one without any
	// stream is refused, as the kubelet's streaming server refuses it.
	if _, err := rc.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: c.ContainerId, Cmd: []string{"true"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Exec without streams: %v, want InvalidArgument", err)
	}
	// Streaming lists (KEP 5825) end with EOF after every item once.
	ps, err := rc.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var pods []*runtimeapi.PodSandbox
	for {
		m, err := ps.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, m.PodSandboxes...)
	}
	if len(pods) != 1 || pods[0].Id != sb.PodSandboxId {
		t.Errorf("StreamPodSandboxes: %v", pods)
	}
	cs, err := rc.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := cs.Recv(); err != io.EOF {
		t.Errorf("StreamContainers with no match: %v %v, want EOF", m, err)
	}
	if _, err := rc.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
}

func rootfs(t *testing.T, busybox string) []byte {
	t.Helper()
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, bb)
	for _, a := range []string{"sh", "sleep", "hostname"} {
		add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	}
	tw.Close()
	return buf.Bytes()
}
