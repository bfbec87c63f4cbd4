package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func (s *Server) logs(w http.ResponseWriter, r *http.Request, req *request) {
	o, err := podLogOptions(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	obj, err := s.reg.Get(r.Context(), req.res, req.namespace, req.name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pod := obj.(*corev1.Pod)
	if err := resolveContainer(pod, o); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Logs == nil {
		s.writeError(w, r, apierrors.NewServiceUnavailable("logs are not available"))
		return
	}
	fw := &flushWriter{w: w, header: func() {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
	}}
	if f, ok := w.(http.Flusher); ok && o.Follow {
		fw.flusher = f
	}
	err = s.cfg.Logs.StreamLogs(r.Context(), pod, o, fw)
	if err != nil && !fw.started() {
		var st apierrors.APIStatus
		if !errors.As(err, &st) {
			err = apierrors.NewBadRequest(err.Error())
		}
		s.writeError(w, r, err)
		return
	}
	if err != nil {
		s.log.Warn("streaming logs", "pod", req.namespace+"/"+req.name, "err", err)
	}
	if !fw.started() {
		fw.header()
	}
}

// resolveContainer picks the pod's only container when none is named, and
// refuses names the pod does not have, in the API server's words.
func resolveContainer(pod *corev1.Pod, o *corev1.PodLogOptions) error {
	var names, initNames, ephemeral []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		initNames = append(initNames, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		ephemeral = append(ephemeral, c.Name)
	}
	if o.Container == "" {
		if len(names) == 1 {
			o.Container = names[0]
			return nil
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
		if len(initNames) > 0 {
			msg += fmt.Sprintf(" or one of the init containers: %v", initNames)
		}
		if len(ephemeral) > 0 {
			msg += fmt.Sprintf(" or one of the ephemeral containers: %v", ephemeral)
		}
		return apierrors.NewBadRequest(msg)
	}
	if contains(names, o.Container) || contains(initNames, o.Container) || contains(ephemeral, o.Container) {
		return nil
	}
	return apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", o.Container, pod.Name))
}

// podLogOptions parses the log query parameters (core/v1 has no
// registered query conversion for PodLogOptions outside the kube-apiserver).
func podLogOptions(q url.Values) (*corev1.PodLogOptions, error) {
	o := &corev1.PodLogOptions{Container: q.Get("container")}
	var errs []string
	parseBool := func(name string, dst *bool) {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			}
			*dst = b
		}
	}
	parseInt := func(name string) *int64 {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			return nil
		}
		return &n
	}
	parseBool("follow", &o.Follow)
	parseBool("previous", &o.Previous)
	parseBool("timestamps", &o.Timestamps)
	parseBool("insecureSkipTLSVerifyBackend", &o.InsecureSkipTLSVerifyBackend)
	o.SinceSeconds = parseInt("sinceSeconds")
	o.TailLines = parseInt("tailLines")
	o.LimitBytes = parseInt("limitBytes")
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("sinceTime: %v", err))
		}
		mt := metav1.NewTime(t)
		o.SinceTime = &mt
	}
	if o.SinceSeconds != nil && o.SinceTime != nil {
		errs = append(errs, "at most one of `sinceTime` or `sinceSeconds` may be specified")
	}
	if o.SinceSeconds != nil && *o.SinceSeconds < 1 {
		errs = append(errs, "sinceSeconds: must be greater than 0")
	}
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, "tailLines: must be greater than or equal to 0")
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, "limitBytes: must be greater than 0")
	}
	if len(errs) > 0 {
		return nil, apierrors.NewBadRequest(strings.Join(errs, "; "))
	}
	return o, nil
}

// flushWriter sends the status line with the first byte (so an error before
// any output can still be a Status) and flushes every write when following.
type flushWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	flusher http.Flusher
	header  func()
	wrote   bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.wrote {
		f.wrote = true
		f.header()
	}
	n, err := f.w.Write(p)
	if f.flusher != nil {
		f.flusher.Flush()
	}
	return n, err
}

func (f *flushWriter) started() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wrote
}
