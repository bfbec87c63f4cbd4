package podmanager

import (
	"context"
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's GetExec, GetAttach and GetPortForward: find the running
// container (or the pod's sandbox) in the runtime and ask the runtime's
// streaming server for a URL; the API server proxies the client there.
// Errors carry the kubelet's wording ("container not found (\"c\")") and
// wrap the runtime's gRPC status when it refused.

// ExecURL returns where o.Command runs in the pod's running container
// o.Container. As the kubelet does, a terminal drops stderr (a terminal has
// one output).
func (m *Manager) ExecURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodExecOptions) (*url.URL, error) {
	id, err := m.runningContainerID(ctx, pod, o.Container)
	if err != nil {
		return nil, err
	}
	resp, err := m.runtime.Exec(ctx, &runtimeapi.ExecRequest{
		ContainerId: id,
		Cmd:         o.Command,
		Tty:         o.TTY,
		Stdin:       o.Stdin,
		Stdout:      o.Stdout,
		Stderr:      o.Stderr && !o.TTY,
	})
	if err != nil {
		return nil, fmt.Errorf("exec in container %q of pod %q: %w", o.Container, pod.Name, err)
	}
	return url.Parse(resp.GetUrl())
}

// AttachURL returns where a client attaches to the pod's running container
// o.Container.
func (m *Manager) AttachURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodAttachOptions) (*url.URL, error) {
	id, err := m.runningContainerID(ctx, pod, o.Container)
	if err != nil {
		return nil, err
	}
	resp, err := m.runtime.Attach(ctx, &runtimeapi.AttachRequest{
		ContainerId: id,
		Tty:         o.TTY,
		Stdin:       o.Stdin,
		Stdout:      o.Stdout,
		Stderr:      o.Stderr && !o.TTY,
	})
	if err != nil {
		return nil, fmt.Errorf("attach to container %q of pod %q: %w", o.Container, pod.Name, err)
	}
	return url.Parse(resp.GetUrl())
}

// PortForwardURL returns where a client forwards ports of the pod's newest
// sandbox (the ports are named by the client per stream).
func (m *Manager) PortForwardURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodPortForwardOptions) (*url.URL, error) {
	sandboxes, err := m.runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{labelPodUID: string(pod.UID)},
	})
	if err != nil {
		return nil, fmt.Errorf("sandboxes of pod %q: %w", pod.Name, err)
	}
	var newest *runtimeapi.PodSandbox
	for _, s := range sandboxes {
		if newest == nil || s.CreatedAt > newest.CreatedAt {
			newest = s
		}
	}
	if newest == nil {
		return nil, fmt.Errorf("pod %q has no running sandbox", pod.Name)
	}
	resp, err := m.runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: newest.Id, Port: o.Ports})
	if err != nil {
		return nil, fmt.Errorf("forward ports of pod %q: %w", pod.Name, err)
	}
	return url.Parse(resp.GetUrl())
}

// runningContainerID is the kubelet's findContainer: the running container of
// that name in the pod.
func (m *Manager) runningContainerID(ctx context.Context, pod *corev1.Pod, name string) (string, error) {
	containers, err := m.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{labelPodUID: string(pod.UID), labelContainerName: name},
	})
	if err != nil {
		return "", fmt.Errorf("containers of pod %q: %w", pod.Name, err)
	}
	var newest *runtimeapi.Container
	for _, c := range containers {
		if newest == nil || c.CreatedAt > newest.CreatedAt {
			newest = c
		}
	}
	if newest == nil {
		return "", fmt.Errorf("container not found (%q)", name)
	}
	return newest.Id, nil
}
