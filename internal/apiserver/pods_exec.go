package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// Streamer serves pods/exec, pods/attach and pods/portforward: it is the
// kubelet's half (implemented by the pod manager), which asks the runtime
// for a streaming URL. The API server proxies the client's upgraded
// connection there, as the kube-apiserver proxies it to the kubelet.
type Streamer interface {
	// ExecURL and AttachURL get options whose Container is resolved.
	ExecURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodExecOptions) (*url.URL, error)
	AttachURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodAttachOptions) (*url.URL, error)
	PortForwardURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodPortForwardOptions) (*url.URL, error)
}

// streamOptionsKind is the kind of each streaming subresource's options
// (what discovery lists for pods/exec, pods/attach, pods/portforward).
var streamOptionsKind = map[string]string{
	"exec":        "PodExecOptions",
	"attach":      "PodAttachOptions",
	"portforward": "PodPortForwardOptions",
}

// serveStream serves GET and POST (both are upgrades) on the streaming
// subresources.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, req *request) {
	switch req.subresource {
	case "exec":
		s.exec(w, r, req)
	case "attach":
		s.attach(w, r, req)
	case "portforward":
		s.portForward(w, r, req)
	}
}

// streamOptions are the exec and attach query parameters.
type streamOptions struct {
	container                  string
	command                    []string
	stdin, stdout, stderr, tty bool
}

// parseStreamOptions reads the query as the kube-apiserver converts it into
// PodExecOptions or PodAttachOptions: stdout and stderr default to true.
func parseStreamOptions(q url.Values) (*streamOptions, error) {
	o := &streamOptions{container: q.Get("container"), command: q["command"], stdout: true, stderr: true}
	var errs []string
	for name, dst := range map[string]*bool{"stdin": &o.stdin, "stdout": &o.stdout, "stderr": &o.stderr, "tty": &o.tty} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			}
			*dst = b
		}
	}
	if len(errs) > 0 {
		return nil, apierrors.NewBadRequest(strings.Join(errs, "; "))
	}
	return o, nil
}

// streamPod gets the pod and resolves the container of an exec or attach.
func (s *Server) streamPod(r *http.Request, req *request, o *streamOptions) (*corev1.Pod, error) {
	obj, err := s.reg.Get(r.Context(), req.res, req.namespace, req.name)
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	if o != nil {
		lo := &corev1.PodLogOptions{Container: o.container}
		if err := resolveContainer(pod, lo); err != nil {
			return nil, err
		}
		o.container = lo.Container
	}
	if pod.Spec.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	return pod, nil
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request, req *request) {
	s.remoteCommand(w, r, req, "exec", func(ctx context.Context, pod *corev1.Pod, o *streamOptions) (*url.URL, error) {
		return s.cfg.Streams.ExecURL(ctx, pod, &corev1.PodExecOptions{
			Container: o.container, Command: o.command, Stdin: o.stdin, Stdout: o.stdout, Stderr: o.stderr, TTY: o.tty,
		})
	})
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request, req *request) {
	s.remoteCommand(w, r, req, "attach", func(ctx context.Context, pod *corev1.Pod, o *streamOptions) (*url.URL, error) {
		return s.cfg.Streams.AttachURL(ctx, pod, &corev1.PodAttachOptions{
			Container: o.container, Stdin: o.stdin, Stdout: o.stdout, Stderr: o.stderr, TTY: o.tty,
		})
	})
}

// remoteCommand serves exec and attach, which differ only in the command exec
// requires and the Streamer method that gives the runtime's URL.
func (s *Server) remoteCommand(w http.ResponseWriter, r *http.Request, req *request, verb string,
	streamURL func(context.Context, *corev1.Pod, *streamOptions) (*url.URL, error)) {
	o, err := parseStreamOptions(r.URL.Query())
	if err == nil && verb == "exec" && len(o.command) == 0 {
		err = apierrors.NewBadRequest("you must specify at least one command for the container")
	}
	if err == nil {
		err = requireStream(o)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pod, err := s.streamPod(r, req, o)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Streams == nil {
		s.writeError(w, r, apierrors.NewServiceUnavailable(verb+" is not available"))
		return
	}
	u, err := streamURL(r.Context(), pod, o)
	if err != nil {
		s.writeKubeletError(w, r, err)
		return
	}
	s.proxyRemoteCommand(w, r, u, o)
}

func (s *Server) portForward(w http.ResponseWriter, r *http.Request, req *request) {
	o := &corev1.PodPortForwardOptions{}
	for _, v := range r.URL.Query()["ports"] {
		for _, p := range strings.Split(v, ",") {
			port, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil || port == 0 {
				s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid port %q: must be between 1 and 65535", p)))
				return
			}
			o.Ports = append(o.Ports, int32(port))
		}
	}
	pod, err := s.streamPod(r, req, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Streams == nil {
		s.writeError(w, r, apierrors.NewServiceUnavailable("port forwarding is not available"))
		return
	}
	u, err := s.cfg.Streams.PortForwardURL(r.Context(), pod, o)
	if err != nil {
		s.writeKubeletError(w, r, err)
		return
	}
	// kubectl first tunnels SPDY through a WebSocket (PortForwardWebsockets);
	// anything else is proxied as it is.
	if wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		s.tunnelPortForward(w, r, u)
		return
	}
	s.upgradeProxy(u).ServeHTTP(w, r)
}

// requireStream is the kubelet's check: something to stream.
func requireStream(o *streamOptions) error {
	if !o.stdin && !o.stdout && !o.stderr {
		return apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr")
	}
	return nil
}

// proxyRemoteCommand connects the client to the runtime's exec or attach
// endpoint. The runtime's streaming server speaks SPDY and the WebSocket
// protocols up to v4; a client asking for v5.channel.k8s.io (kubectl's
// default) gets the kube-apiserver's translation to SPDY.
func (s *Server) proxyRemoteCommand(w http.ResponseWriter, r *http.Request, u *url.URL, o *streamOptions) {
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		s.translateToSPDY(w, r, u, o)
		return
	}
	s.upgradeProxy(u).ServeHTTP(w, r)
}

// upgradeProxy proxies an upgrade request (SPDY or WebSocket) to the
// runtime's streaming server, as the kube-apiserver proxies it to the kubelet.
func (s *Server) upgradeProxy(u *url.URL) http.Handler {
	return proxy.NewUpgradeAwareHandler(u, streamTransport, false, true, proxyResponder{s})
}

// streamTransport reaches the runtime's streaming server on loopback: no
// proxy from the environment.
var streamTransport = &http.Transport{}

type proxyResponder struct{ s *Server }

func (p proxyResponder) Error(w http.ResponseWriter, r *http.Request, err error) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		err = apierrors.NewInternalError(fmt.Errorf("error dialing backend: %w", err))
	}
	p.s.writeError(w, r, err)
}

// writeKubeletError answers an error from the pod manager before any upgrade
// as the kubelet's streaming server does (k8s.io/cri-streaming WriteError):
// the message as text, 404 for a runtime's NotFound, else 500. kubectl
// prints it after "unable to upgrade connection: ".
func (s *Server) writeKubeletError(w http.ResponseWriter, r *http.Request, err error) {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s.writeError(w, r, err)
		return
	}
	code := http.StatusInternalServerError
	if gs, ok := status.FromError(err); ok && gs.Code() == codes.NotFound {
		code = http.StatusNotFound
	}
	s.log.Info("stream refused", "url", r.URL.Path, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(err.Error()))
}
