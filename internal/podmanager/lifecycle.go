package podmanager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"

	plog "github.com/peapod-dev/peapod/internal/log"
)

// Event reasons of lifecycle hooks.
const (
	eventFailedPostStartHook = "FailedPostStartHook"
	eventFailedPreStopHook   = "FailedPreStopHook"
)

// hookHTTPTimeout bounds an httpGet hook (the kubelet's hook client has none,
// the grace period bounds preStop; postStart would otherwise hang forever).
const hookHTTPTimeout = 30 * time.Second

// runHandler runs a lifecycle hook (lifecycle/handlers.go): exec in the
// container through the runtime, an HTTP GET to the pod, or a sleep. It returns
// the failure message.
func (m *Manager) runHandler(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID, podIP string, h *corev1.LifecycleHandler) (string, error) {
	switch {
	case h.Exec != nil:
		stdout, stderr, err := m.runtime.ExecSync(ctx, containerID, h.Exec.Command, 0)
		if err != nil {
			return fmt.Sprintf("Exec lifecycle hook (%v) for Container %q in Pod %q failed - error: %v, message: %q",
				h.Exec.Command, c.Name, podDesc(pod), err, string(stdout)+string(stderr)), err
		}
		return "", nil
	case h.HTTPGet != nil:
		if err := m.runHTTPHandler(ctx, h.HTTPGet, podIP, c); err != nil {
			return fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v",
				h.HTTPGet.Path, c.Name, podDesc(pod), err), err
		}
		return "", nil
	case h.Sleep != nil:
		t := m.clock.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C():
			return "", nil
		case <-ctx.Done():
			err := ctx.Err()
			return fmt.Sprintf("Sleep lifecycle hook (%d) for Container %q in Pod %q failed - error: %v",
				h.Sleep.Seconds, c.Name, podDesc(pod), err), err
		}
	}
	err := errors.New("cannot run handler: unknown handler type")
	return err.Error(), err
}

func (m *Manager) runHTTPHandler(ctx context.Context, h *corev1.HTTPGetAction, podIP string, c *corev1.Container) error {
	u, headers, err := httpGetURL(h, podIP, c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, hookHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header = headers
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "kube-lifecycle/1.37")
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return nil
}

// runPostStartHook runs the container's postStart hook; on failure the
// container is killed and ErrPostStartHook returned.
func (m *Manager) runPostStartHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cs *containerStatus, podIP string) (string, error) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return "", nil
	}
	msg, err := m.runHandler(ctx, pod, c, cs.ID, podIP, c.Lifecycle.PostStart)
	if err == nil {
		return "", nil
	}
	if ctx.Err() != nil {
		// The sync was interrupted (the pod is being deleted): termination kills it.
		return msg, ErrPostStartHook
	}
	plog.FromContext(ctx).Warn("postStart hook failed", "container", c.Name, "err", err)
	m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailedPostStartHook, msg)
	if kerr := m.killContainer(ctx, pod, cs, gracePeriodForDeletion(pod), "FailedPostStartHook"); kerr != nil {
		plog.FromContext(ctx).Warn("killing container after its postStart hook failed", "container", c.Name, "err", kerr)
	}
	return msg, ErrPostStartHook
}

// executePreStopHook runs the preStop hook within the grace period and returns
// the seconds it took (deducted from the grace period).
func (m *Manager) executePreStopHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cs *containerStatus, gracePeriod int64) int64 {
	start := m.clock.Now()
	hookCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		msg, err := m.runHandler(hookCtx, pod, c, cs.ID, m.podIP(pod), c.Lifecycle.PreStop)
		if err != nil && hookCtx.Err() == nil {
			plog.FromContext(ctx).Warn("preStop hook failed", "container", c.Name, "err", err)
			m.recordContainerEvent(ctx, pod, c.Name, corev1.EventTypeWarning, eventFailedPreStopHook, msg)
		}
	}()
	t := m.clock.NewTimer(time.Duration(gracePeriod) * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C():
		plog.FromContext(ctx).Info("preStop hook did not complete within the grace period", "container", c.Name, "gracePeriod", gracePeriod)
	}
	return int64(m.clock.Since(start).Seconds())
}

// podIP is the pod's address as last reported.
func (m *Manager) podIP(pod *corev1.Pod) string {
	if st, ok := m.status.getByUID(pod.UID); ok && st.PodIP != "" {
		return st.PodIP
	}
	return pod.Status.PodIP
}

// containerSpec finds a container of the pod's spec by name.
func containerSpec(pod *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}
