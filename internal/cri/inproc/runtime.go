// Package inproc adapts CRI servers (runtimeapi.RuntimeServiceServer and
// runtimeapi.ImageServiceServer) to the interfaces the kubelet itself uses,
// k8s.io/cri-api/pkg/apis RuntimeService and ImageManagerService, so that the
// pod manager drives the runtime in-process exactly as it would over gRPC.
//
// Requests and responses are deep-copied, as the wire would copy them: the
// caller and the server never share memory, and errors are the server's own
// gRPC status errors.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"
)

// RuntimeService is a cri.RuntimeService over a RuntimeServiceServer.
type RuntimeService struct {
	srv runtimeapi.RuntimeServiceServer
}

var _ cri.RuntimeService = (*RuntimeService)(nil)

// NewRuntimeService returns the kubelet's RuntimeService interface over srv.
func NewRuntimeService(srv runtimeapi.RuntimeServiceServer) *RuntimeService {
	return &RuntimeService{srv: srv}
}

// clone deep-copies a message (nil stays nil).
func clone[T proto.Message](m T) T {
	var zero T
	if proto.Message(m) == proto.Message(zero) {
		return m
	}
	return proto.Clone(m).(T)
}

func (r *RuntimeService) Version(ctx context.Context, apiVersion string) (*runtimeapi.VersionResponse, error) {
	resp, err := r.srv.Version(ctx, &runtimeapi.VersionRequest{Version: apiVersion})
	return clone(resp), err
}

func (r *RuntimeService) CreateContainer(ctx context.Context, podSandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := r.srv.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: podSandboxID, Config: clone(config), SandboxConfig: clone(sandboxConfig),
	})
	if err != nil {
		return "", err
	}
	return resp.GetContainerId(), nil
}

func (r *RuntimeService) StartContainer(ctx context.Context, containerID string) error {
	_, err := r.srv.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: containerID})
	return err
}

func (r *RuntimeService) StopContainer(ctx context.Context, containerID string, timeout int64) error {
	_, err := r.srv.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: containerID, Timeout: timeout})
	return err
}

func (r *RuntimeService) RemoveContainer(ctx context.Context, containerID string) error {
	_, err := r.srv.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: containerID})
	return err
}

func (r *RuntimeService) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	resp, err := r.srv.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: clone(filter)})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetContainers(), nil
}

func (r *RuntimeService) ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	resp, err := r.srv.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: containerID, Verbose: verbose})
	return clone(resp), err
}

func (r *RuntimeService) UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error {
	_, err := r.srv.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: containerID, Linux: clone(resources.GetLinux()), Windows: clone(resources.GetWindows()),
	})
	return err
}

// ExecSync runs cmd in the container. As the kubelet's remote client does, a
// non-zero exit code is returned as a k8s.io/utils/exec.CodeExitError along
// with the output.
func (r *RuntimeService) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout []byte, stderr []byte, err error) {
	resp, err := r.srv.ExecSync(ctx, &runtimeapi.ExecSyncRequest{
		ContainerId: containerID, Cmd: append([]string{}, cmd...), Timeout: int64(timeout.Seconds()),
	})
	if err != nil {
		return nil, nil, err
	}
	if resp.GetExitCode() != 0 {
		return resp.GetStdout(), resp.GetStderr(), utilexec.CodeExitError{
			Err:  fmt.Errorf("command %q exited with %d: %s", strings.Join(cmd, " "), resp.GetExitCode(), resp.GetStderr()),
			Code: int(resp.GetExitCode()),
		}
	}
	return resp.GetStdout(), resp.GetStderr(), nil
}

func (r *RuntimeService) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	resp, err := r.srv.Exec(ctx, clone(req))
	return clone(resp), err
}

func (r *RuntimeService) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	resp, err := r.srv.Attach(ctx, clone(req))
	return clone(resp), err
}

func (r *RuntimeService) ReopenContainerLog(ctx context.Context, containerID string) error {
	_, err := r.srv.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: containerID})
	return err
}

func (r *RuntimeService) CheckpointContainer(ctx context.Context, options *runtimeapi.CheckpointContainerRequest) error {
	_, err := r.srv.CheckpointContainer(ctx, clone(options))
	return err
}

// GetContainerEvents streams the server's container events into ch until ctx
// ends or the server returns.
func (r *RuntimeService) GetContainerEvents(ctx context.Context, ch chan *runtimeapi.ContainerEventResponse, connectionEstablishedCallback func(runtimeapi.RuntimeService_GetContainerEventsClient)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := &eventStream{ctx: ctx, ch: ch}
	if connectionEstablishedCallback != nil {
		connectionEstablishedCallback(&eventClient{ctx: ctx})
	}
	return r.srv.GetContainerEvents(&runtimeapi.GetEventsRequest{}, stream)
}

func (r *RuntimeService) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	resp, err := r.srv.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: clone(config), RuntimeHandler: runtimeHandler})
	if err != nil {
		return "", err
	}
	return resp.GetPodSandboxId(), nil
}

func (r *RuntimeService) StopPodSandbox(ctx context.Context, podSandboxID string) error {
	_, err := r.srv.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podSandboxID})
	return err
}

func (r *RuntimeService) RemovePodSandbox(ctx context.Context, podSandboxID string) error {
	_, err := r.srv.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podSandboxID})
	return err
}

func (r *RuntimeService) PodSandboxStatus(ctx context.Context, podSandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	resp, err := r.srv.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podSandboxID, Verbose: verbose})
	return clone(resp), err
}

func (r *RuntimeService) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	resp, err := r.srv.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: clone(filter)})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetItems(), nil
}

func (r *RuntimeService) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	resp, err := r.srv.PortForward(ctx, clone(req))
	return clone(resp), err
}

func (r *RuntimeService) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	resp, err := r.srv.UpdatePodSandboxResources(ctx, clone(req))
	return clone(resp), err
}

func (r *RuntimeService) CheckpointPod(ctx context.Context, options *runtimeapi.CheckpointPodRequest) error {
	_, err := r.srv.CheckpointPod(ctx, clone(options))
	return err
}

func (r *RuntimeService) RestorePod(ctx context.Context, options *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	resp, err := r.srv.RestorePod(ctx, clone(options))
	return clone(resp), err
}

func (r *RuntimeService) ContainerStats(ctx context.Context, containerID string) (*runtimeapi.ContainerStats, error) {
	resp, err := r.srv.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: containerID})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetStats(), nil
}

func (r *RuntimeService) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	resp, err := r.srv.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: clone(filter)})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetStats(), nil
}

func (r *RuntimeService) PodSandboxStats(ctx context.Context, podSandboxID string) (*runtimeapi.PodSandboxStats, error) {
	resp, err := r.srv.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: podSandboxID})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetStats(), nil
}

func (r *RuntimeService) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	resp, err := r.srv.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: clone(filter)})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetStats(), nil
}

func (r *RuntimeService) ListMetricDescriptors(ctx context.Context) ([]*runtimeapi.MetricDescriptor, error) {
	resp, err := r.srv.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetDescriptors(), nil
}

func (r *RuntimeService) ListPodSandboxMetrics(ctx context.Context) ([]*runtimeapi.PodSandboxMetrics, error) {
	resp, err := r.srv.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		return nil, err
	}
	return clone(resp).GetPodMetrics(), nil
}

func (r *RuntimeService) UpdateRuntimeConfig(ctx context.Context, runtimeConfig *runtimeapi.RuntimeConfig) error {
	_, err := r.srv.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: clone(runtimeConfig)})
	return err
}

func (r *RuntimeService) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	resp, err := r.srv.Status(ctx, &runtimeapi.StatusRequest{Verbose: verbose})
	return clone(resp), err
}

func (r *RuntimeService) RuntimeConfig(ctx context.Context) (*runtimeapi.RuntimeConfigResponse, error) {
	resp, err := r.srv.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	return clone(resp), err
}

// Close does nothing: the server's lifetime belongs to whoever made it.
func (r *RuntimeService) Close(ctx context.Context) error { return nil }

// eventStream is the server side of an in-process GetContainerEvents stream.
type eventStream struct {
	ctx context.Context
	ch  chan *runtimeapi.ContainerEventResponse
}

func (s *eventStream) Send(e *runtimeapi.ContainerEventResponse) error {
	select {
	case s.ch <- clone(e):
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}
func (s *eventStream) SetHeader(metadata.MD) error  { return nil }
func (s *eventStream) SendHeader(metadata.MD) error { return nil }
func (s *eventStream) SetTrailer(metadata.MD)       {}
func (s *eventStream) Context() context.Context     { return s.ctx }
func (s *eventStream) SendMsg(m any) error {
	e, ok := m.(*runtimeapi.ContainerEventResponse)
	if !ok {
		return errors.New("inproc: unexpected message type on container event stream")
	}
	return s.Send(e)
}
func (s *eventStream) RecvMsg(any) error {
	return errors.New("inproc: container event stream is send-only")
}

var _ grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse] = (*eventStream)(nil)

// eventClient stands for the client side of the stream in the callback;
// events arrive on the caller's channel, not through Recv.
type eventClient struct{ ctx context.Context }

func (c *eventClient) Recv() (*runtimeapi.ContainerEventResponse, error) {
	return nil, errors.New("inproc: container events are delivered on the channel")
}
func (c *eventClient) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (c *eventClient) Trailer() metadata.MD         { return metadata.MD{} }
func (c *eventClient) CloseSend() error             { return nil }
func (c *eventClient) Context() context.Context     { return c.ctx }
func (c *eventClient) SendMsg(any) error {
	return errors.New("inproc: container event stream is receive-only")
}
func (c *eventClient) RecvMsg(any) error {
	return errors.New("inproc: container events are delivered on the channel")
}

var _ runtimeapi.RuntimeService_GetContainerEventsClient = (*eventClient)(nil)
