package podmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-dev/peapod/internal/crilog"
)

// ErrLogsUnavailable wraps the reasons a container's logs cannot be read yet
// (no container name, waiting to start, no previous attempt): a bad request
// for the API server.
var ErrLogsUnavailable = errors.New("logs unavailable")

// logsUnavailable is an error that is ErrLogsUnavailable with the kubelet's message.
type logsUnavailable struct{ msg string }

func (e *logsUnavailable) Error() string        { return e.msg }
func (e *logsUnavailable) Is(target error) bool { return target == ErrLogsUnavailable }

func unavailable(format string, args ...any) error {
	return &logsUnavailable{msg: fmt.Sprintf(format, args...)}
}

// StreamLogs writes a container's log to w as `kubectl logs` asks
// (follow, previous, tail, since, timestamps, limitBytes, stream). It picks the
// container from the pod's status as the kubelet's validateContainerLogStatus
// does and reads the runtime's log file for it.
func (m *Manager) StreamLogs(ctx context.Context, pod *corev1.Pod, opts *corev1.PodLogOptions, w io.Writer) error {
	if opts == nil {
		opts = &corev1.PodLogOptions{}
	}
	name, err := logContainerName(pod, opts.Container)
	if err != nil {
		return err
	}
	id, err := containerIDForLogs(pod, name, opts.Previous)
	if err != nil {
		return err
	}
	resp, err := m.runtime.ContainerStatus(ctx, id, false)
	if err != nil {
		return fmt.Errorf("status of container %q in pod %q: %w", name, pod.Name, err)
	}
	cs := toContainerStatus(resp.GetStatus())
	path := m.containerLogPath(pod, cs)
	if path == "" {
		return unavailable("container %q in pod %q has no log file", name, pod.Name)
	}

	o := crilog.ReadOptions{Follow: opts.Follow, Tail: -1, Timestamps: opts.Timestamps}
	if opts.TailLines != nil {
		o.Tail = *opts.TailLines
	}
	if opts.LimitBytes != nil {
		o.LimitBytes = *opts.LimitBytes
	}
	switch {
	case opts.SinceTime != nil:
		o.Since = opts.SinceTime.Time
	case opts.SinceSeconds != nil:
		o.Since = m.clock.Now().Add(-secondsDuration(*opts.SinceSeconds))
	}
	o.Running = func() bool {
		r, err := m.runtime.ContainerStatus(ctx, id, false)
		return err == nil && r.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	stdout, stderr := w, w
	if opts.Stream != nil {
		switch *opts.Stream {
		case corev1.LogStreamStdout:
			stderr = nil
		case corev1.LogStreamStderr:
			stdout = nil
		}
	}
	return crilog.ReadLogs(ctx, path, o, stdout, stderr)
}

// logContainerName defaults to the pod's only container.
func logContainerName(pod *corev1.Pod, name string) (string, error) {
	if name != "" {
		for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
			for i := range cs {
				if cs[i].Name == name {
					return name, nil
				}
			}
		}
		for i := range pod.Spec.EphemeralContainers {
			if pod.Spec.EphemeralContainers[i].Name == name {
				return name, nil
			}
		}
		return "", unavailable("container %s is not valid for pod %s", name, pod.Name)
	}
	if len(pod.Spec.Containers) == 1 {
		return pod.Spec.Containers[0].Name, nil
	}
	var names []string
	for i := range pod.Spec.Containers {
		names = append(names, pod.Spec.Containers[i].Name)
	}
	return "", unavailable("a container name must be specified for pod %s, choose one of: [%s]", pod.Name, strings.Join(names, " "))
}

// containerIDForLogs is the kubelet's validateContainerLogStatus: which attempt's
// runtime ID to read, from the pod's status.
func containerIDForLogs(pod *corev1.Pod, name string, previous bool) (string, error) {
	var status *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				status = &list[i]
			}
		}
	}
	if status == nil {
		return "", unavailable("container %q in pod %q is waiting to start - no logs yet", name, pod.Name)
	}
	last := status.LastTerminationState.Terminated
	var cid string
	switch st := status.State; {
	case previous:
		if last == nil || last.ContainerID == "" {
			return "", unavailable("previous terminated container %q in pod %q not found", name, pod.Name)
		}
		cid = last.ContainerID
	case st.Running != nil:
		cid = status.ContainerID
	case st.Terminated != nil:
		if st.Terminated.ContainerID != "" {
			cid = st.Terminated.ContainerID
		} else if last != nil && last.ContainerID != "" {
			cid = last.ContainerID
		} else {
			return "", unavailable("container %q in pod %q is terminated", name, pod.Name)
		}
	case last != nil:
		if last.ContainerID == "" {
			return "", unavailable("container %q in pod %q is terminated", name, pod.Name)
		}
		cid = last.ContainerID
	case st.Waiting != nil:
		switch st.Waiting.Reason {
		case ErrImagePull.Error():
			return "", unavailable("container %q in pod %q is waiting to start: image can't be pulled", name, pod.Name)
		case ErrImagePullBackOff.Error():
			return "", unavailable("container %q in pod %q is waiting to start: trying and failing to pull image", name, pod.Name)
		}
		return "", unavailable("container %q in pod %q is waiting to start: %s", name, pod.Name, st.Waiting.Reason)
	default:
		return "", unavailable("container %q in pod %q is waiting to start - no logs yet", name, pod.Name)
	}
	// "<runtime>://<id>"
	if i := strings.Index(cid, "://"); i >= 0 {
		cid = cid[i+3:]
	}
	return cid, nil
}

// lastLogLines returns the end of a container's log: at most lines lines and
// maxBytes bytes (for FallbackToLogsOnError).
func (m *Manager) lastLogLines(pod *corev1.Pod, cs *containerStatus, lines, maxBytes int64) string {
	path := m.containerLogPath(pod, cs)
	if path == "" {
		return ""
	}
	var b bytes.Buffer
	if err := crilog.ReadLogs(context.Background(), path, crilog.ReadOptions{Tail: lines}, &b, &b); err != nil {
		return ""
	}
	out := b.Bytes()
	if int64(len(out)) > maxBytes {
		out = out[int64(len(out))-maxBytes:]
	}
	return string(out)
}
