package podmanager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilexec "k8s.io/utils/exec"
)

// probeUserAgent is what the kubelet of this API version sends.
const probeUserAgent = "kube-probe/1.37"

// maxProbeBody is how much of an HTTP probe's body is kept for the event.
const maxProbeBody = 10 * 1024

type probeType int

const (
	liveness probeType = iota
	readiness
	startup
)

func (t probeType) String() string {
	switch t {
	case liveness:
		return "Liveness"
	case readiness:
		return "Readiness"
	}
	return "Startup"
}

// probeResult is results.Result of the kubelet.
type probeResult int

const (
	resultUnknown probeResult = iota
	resultSuccess
	resultFailure
)

func (r probeResult) String() string {
	switch r {
	case resultSuccess:
		return "Success"
	case resultFailure:
		return "Failure"
	}
	return "Unknown"
}

// probeOutcome is probe.Result: Warning counts as success with an event.
type probeOutcome int

const (
	outcomeSuccess probeOutcome = iota
	outcomeWarning
	outcomeFailure
	outcomeUnknown
)

// runProbe runs one probe of a container once (prober.runProbe) and returns its
// outcome and output; an error means the probe itself could not run.
func (m *Manager) runProbe(ctx context.Context, p *corev1.Probe, pod *corev1.Pod, podIP string, c *corev1.Container, containerID string) (probeOutcome, string, error) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	switch {
	case p.Exec != nil:
		cmd := expandStatic(p.Exec.Command, c.Env)
		return m.execProbe(ctx, containerID, cmd, timeout)
	case p.HTTPGet != nil:
		u, headers, err := httpGetURL(p.HTTPGet, podIP, c)
		if err != nil {
			return outcomeUnknown, "", err
		}
		return httpProbe(ctx, u, headers, timeout)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return outcomeUnknown, "", err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		return tcpProbe(ctx, net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	case p.GRPC != nil:
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		return grpcProbe(ctx, net.JoinHostPort(podIP, strconv.Itoa(int(p.GRPC.Port))), service, timeout)
	}
	return outcomeUnknown, "", fmt.Errorf("missing probe handler for %s:%s", podDesc(pod), c.Name)
}

// execProbe runs the command in the container through the runtime (ExecSync):
// exit 0 succeeds, another exit code or a timeout fails.
func (m *Manager) execProbe(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (probeOutcome, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
	defer cancel()
	stdout, stderr, err := m.runtime.ExecSync(ctx, containerID, cmd, timeout)
	out := string(stdout) + string(stderr)
	if err == nil {
		return outcomeSuccess, out, nil
	}
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) {
		if exitErr.ExitStatus() == 0 {
			return outcomeSuccess, out, nil
		}
		return outcomeFailure, out, nil
	}
	if errors.Is(err, context.DeadlineExceeded) || grpcstatus.Code(err) == codes.DeadlineExceeded {
		return outcomeFailure, fmt.Sprintf("command %q timed out", strings.Join(cmd, " ")), nil
	}
	return outcomeUnknown, "", err
}

// expandStatic expands $(VAR) in an exec probe's command with the container's
// literal env values (ExpandContainerCommandOnlyStatic).
func expandStatic(cmd []string, env []corev1.EnvVar) []string {
	vars := map[string]string{}
	for _, e := range env {
		if e.ValueFrom == nil {
			vars[e.Name] = e.Value
		}
	}
	out := make([]string, 0, len(cmd))
	for _, s := range cmd {
		out = append(out, expand(s, mappingFuncFor(vars)))
	}
	return out
}

// resolvePort is probe.ResolveContainerPort: a number, or a named port of the container.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number: %v", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", p, c.Name)
}

// httpGetURL builds the URL and headers of an httpGet probe or hook.
func httpGetURL(h *corev1.HTTPGetAction, podIP string, c *corev1.Container) (*url.URL, http.Header, error) {
	port, err := resolvePort(h.Port, c)
	if err != nil {
		return nil, nil, err
	}
	host := h.Host
	if host == "" {
		host = podIP
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if path != "" && !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path))
	if err != nil {
		return nil, nil, err
	}
	headers := http.Header{}
	for _, hd := range h.HTTPHeaders {
		headers.Add(hd.Name, hd.Value)
	}
	return u, headers, nil
}

// probeClient follows redirects to the same host only, at most 10.
var probeClient = &http.Client{
	Transport: probeTransport{},
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Hostname() != via[0].URL.Hostname() {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	},
}

// httpProbe is probe/http: 200–399 succeed (a redirect to another host is a
// warning), anything else fails; TLS is not verified.
func httpProbe(ctx context.Context, u *url.URL, headers http.Header, timeout time.Duration) (probeOutcome, string, error) {
	// A deadline on the request rather than the client's Timeout, which
	// would start a goroutine and a timer per request.
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return outcomeFailure, err.Error(), nil
	}
	req.Header = headers.Clone()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", probeUserAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "*/*")
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	res, err := probeClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// The message of the kubelet's client, which has a Timeout.
			return outcomeFailure, err.Error() + " (Client.Timeout exceeded while awaiting headers)", nil
		}
		return outcomeFailure, err.Error(), nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxProbeBody))
	body := string(b)
	if res.StatusCode >= http.StatusOK && res.StatusCode < http.StatusBadRequest {
		if res.StatusCode >= http.StatusMultipleChoices {
			return outcomeWarning, fmt.Sprintf("Probe terminated redirects, Response body: %v", body), nil
		}
		return outcomeSuccess, body, nil
	}
	return outcomeFailure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}

// tcpProbe succeeds when a connection opens.
func tcpProbe(ctx context.Context, addr string, timeout time.Duration) (probeOutcome, string, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return outcomeFailure, err.Error(), nil
	}
	conn.Close()
	return outcomeSuccess, "", nil
}

// grpcProbe asks the gRPC health service; SERVING succeeds.
func grpcProbe(ctx context.Context, addr, service string, timeout time.Duration) (probeOutcome, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent(probeUserAgent))
	if err != nil {
		return outcomeFailure, fmt.Sprintf("timeout: failed to connect service %q within %v: %+v", addr, timeout, err), nil
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		st, _ := grpcstatus.FromError(err)
		switch st.Code() {
		case codes.Unimplemented:
			return outcomeFailure, fmt.Sprintf("this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message()), nil
		case codes.DeadlineExceeded:
			return outcomeFailure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout), nil
		}
		return outcomeFailure, fmt.Sprintf("error: health rpc probe failed: %+v", err), nil
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return outcomeFailure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String()), nil
	}
	return outcomeSuccess, fmt.Sprintf("service healthy (responded with %q)", resp.GetStatus().String()), nil
}
