package inproc

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"
)

// fakeRuntime records what it is asked and answers from fixed values.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	gotConfig *runtimeapi.PodSandboxConfig
	list      []*runtimeapi.PodSandbox
}

func (f *fakeRuntime) RunPodSandbox(_ context.Context, r *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	f.gotConfig = r.Config
	if r.RuntimeHandler != "" {
		return nil, status.Error(codes.InvalidArgument, "bad handler")
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}, nil
}

func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: f.list}, nil
}

func (f *fakeRuntime) ExecSync(_ context.Context, r *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if r.Timeout != 2 {
		return nil, status.Errorf(codes.InvalidArgument, "timeout %d", r.Timeout)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: []byte("out"), Stderr: []byte("err"), ExitCode: 3}, nil
}

func TestRuntimeAdapter(t *testing.T) {
	ctx := context.Background()
	f := &fakeRuntime{list: []*runtimeapi.PodSandbox{{Id: "sb1", Labels: map[string]string{"a": "b"}}}}
	rs := NewRuntimeService(f)

	cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p"}}
	id, err := rs.RunPodSandbox(ctx, cfg, "")
	if err != nil || id != "sb1" {
		t.Fatalf("RunPodSandbox: %q %v", id, err)
	}
	cfg.Metadata.Name = "changed"
	if f.gotConfig.Metadata.Name != "p" {
		t.Error("the server shares the caller's request")
	}
	if _, err := rs.RunPodSandbox(ctx, cfg, "other"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("server error not passed through: %v", err)
	}

	items, err := rs.ListPodSandbox(ctx, nil)
	if err != nil || len(items) != 1 {
		t.Fatalf("ListPodSandbox: %v %v", items, err)
	}
	items[0].Labels["a"] = "changed"
	if f.list[0].Labels["a"] != "b" {
		t.Error("the caller shares the server's response")
	}

	stdout, stderr, err := rs.ExecSync(ctx, "c1", []string{"false"}, 2*time.Second)
	var exitErr utilexec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 || string(stdout) != "out" || string(stderr) != "err" {
		t.Errorf("ExecSync with exit 3: %q %q %v", stdout, stderr, err)
	}

	if _, err := rs.ContainerStats(ctx, "c1"); status.Code(err) != codes.Unimplemented {
		t.Errorf("unimplemented RPC: %v", err)
	}
}
