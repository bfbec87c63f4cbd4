package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	streamingrc "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/utils/clock"
	kexec "k8s.io/utils/exec"

	"github.com/peapod-dev/peapod/internal/registry"
)

// fakeStreams is the pod manager's part over a real CRI streaming server
// (k8s.io/cri-streaming) whose runtime is fakeRuntime: the API server's
// proxying, WebSocket v5 translation and port-forward tunnel are what is
// tested, without containers.
type fakeStreams struct{ srv streaming.Server }

func newFakeStreams(t *testing.T) *fakeStreams {
	hs := httptest.NewUnstartedServer(nil)
	cfg := streaming.DefaultConfig
	cfg.Addr = hs.Listener.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	srv, err := streaming.NewServer(cfg, fakeRuntime{})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(hs.Close)
	return &fakeStreams{srv: srv}
}

// errNotRunning is what the pod manager says of a container that is not running.
var errNotRunning = errors.New(`container not found ("stopped")`)

func (f *fakeStreams) ExecURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodExecOptions) (*url.URL, error) {
	if o.Container == "stopped" {
		return nil, errNotRunning
	}
	resp, err := f.srv.GetExec(&runtimeapi.ExecRequest{ContainerId: pod.Name + "/" + o.Container, Cmd: o.Command, Tty: o.TTY, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr && !o.TTY})
	if err != nil {
		return nil, err
	}
	return url.Parse(resp.Url)
}

func (f *fakeStreams) AttachURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodAttachOptions) (*url.URL, error) {
	resp, err := f.srv.GetAttach(&runtimeapi.AttachRequest{ContainerId: pod.Name + "/" + o.Container, Tty: o.TTY, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr && !o.TTY})
	if err != nil {
		return nil, err
	}
	return url.Parse(resp.Url)
}

func (f *fakeStreams) PortForwardURL(ctx context.Context, pod *corev1.Pod, o *corev1.PodPortForwardOptions) (*url.URL, error) {
	resp, err := f.srv.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: pod.Name, Port: o.Ports})
	if err != nil {
		return nil, err
	}
	return url.Parse(resp.Url)
}

// fakeRuntime runs a few "commands": echo ARGS, cat, exit N, size (the
// first terminal size), stderr ARGS.
type fakeRuntime struct{}

func (fakeRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan streamingrc.TerminalSize) error {
	switch cmd[0] {
	case "echo":
		fmt.Fprintf(out, "%s: %s\n", id, strings.Join(cmd[1:], " "))
	case "stderr":
		fmt.Fprintf(errOut, "%s\n", strings.Join(cmd[1:], " "))
	case "cat":
		_, err := io.Copy(out, in)
		return err
	case "exit":
		code, _ := strconv.Atoi(cmd[1])
		return kexec.CodeExitError{Err: fmt.Errorf("exit %d", code), Code: code}
	case "size":
		size := <-resize
		fmt.Fprintf(out, "%d %d tty=%v\n", size.Height, size.Width, tty)
	default:
		return fmt.Errorf("unknown command %q", cmd[0])
	}
	return nil
}

func (fakeRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan streamingrc.TerminalSize) error {
	fmt.Fprintf(out, "attached to %s\n", id)
	_, err := io.Copy(out, in)
	return err
}

// PortForward answers "<sandbox>:<port> " and echoes.
func (fakeRuntime) PortForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	fmt.Fprintf(stream, "%s:%d ", id, port)
	_, err := io.Copy(stream, stream)
	return err
}

// startStreamServer is an API server whose pod manager is fakeStreams, with
// a pod "p" of two containers.
func startStreamServer(t *testing.T, streams Streamer) (*rest.Config, *kubernetes.Clientset) {
	t.Helper()
	dir := t.TempDir()
	st, err := registry.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(st, clock.RealClock{}, "testnode")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", Dir: dir, Registry: reg, Streams: streams, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", dir+"/kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "c", Image: "busybox"}, {Name: "stopped", Image: "busybox"},
		}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cfg, cs
}

func execURL(cs *kubernetes.Clientset, sub string, o *corev1.PodExecOptions) *url.URL {
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("p").SubResource(sub)
	if o != nil {
		req = req.VersionedParams(o, clientscheme.ParameterCodec)
	}
	return req.URL()
}

func TestExecAttachProtocols(t *testing.T) {
	cfg, cs := startStreamServer(t, newFakeStreams(t))
	executors := map[string]func(u *url.URL) (remotecommand.Executor, error){
		"websocket v5": func(u *url.URL) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
		},
		"spdy": func(u *url.URL) (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
		},
	}
	for name, newExec := range executors {
		t.Run(name, func(t *testing.T) {
			run := func(sub string, o *corev1.PodExecOptions, so remotecommand.StreamOptions) error {
				t.Helper()
				ex, err := newExec(execURL(cs, sub, o))
				if err != nil {
					t.Fatal(err)
				}
				return ex.StreamWithContext(context.Background(), so)
			}
			var out, errOut strings.Builder
			err := run("exec", &corev1.PodExecOptions{Container: "c", Command: []string{"echo", "hi", "there"}, Stdout: true, Stderr: true}, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
			if err != nil || out.String() != "p/c: hi there\n" {
				t.Errorf("echo: %v, %q", err, out.String())
			}
			errOut.Reset()
			err = run("exec", &corev1.PodExecOptions{Container: "c", Command: []string{"stderr", "oops"}, Stdout: true, Stderr: true}, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: &errOut})
			if err != nil || errOut.String() != "oops\n" {
				t.Errorf("stderr: %v, %q", err, errOut.String())
			}
			out.Reset()
			in := strings.Repeat("0123456789", 100000)
			// Stderr as kubectl asks for it: the API server defaults it to
			// true (SetDefaults_PodExecOptions), and over SPDY the client
			// must open every stream the server expects.
			err = run("exec", &corev1.PodExecOptions{Container: "c", Command: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true}, remotecommand.StreamOptions{Stdin: strings.NewReader(in), Stdout: &out, Stderr: io.Discard})
			if err != nil || out.String() != in {
				t.Errorf("cat: %v, %d bytes back of %d", err, out.Len(), len(in))
			}
			err = run("exec", &corev1.PodExecOptions{Container: "c", Command: []string{"exit", "7"}, Stdout: true, Stderr: true}, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
			var exitErr utilexec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 7 {
				t.Errorf("exit 7: %v", err)
			}
			out.Reset()
			sizes := &fixedSize{size: remotecommand.TerminalSize{Width: 123, Height: 45}}
			err = run("exec", &corev1.PodExecOptions{Container: "c", Command: []string{"size"}, Stdout: true, Stderr: true, TTY: true}, remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
			if err != nil || out.String() != "45 123 tty=true\n" {
				t.Errorf("size: %v, %q", err, out.String())
			}
			out.Reset()
			err = run("attach", &corev1.PodExecOptions{Container: "c", Stdin: true, Stdout: true, Stderr: true}, remotecommand.StreamOptions{Stdin: strings.NewReader("typed\n"), Stdout: &out, Stderr: io.Discard})
			if err != nil || out.String() != "attached to p/c\ntyped\n" {
				t.Errorf("attach: %v, %q", err, out.String())
			}
		})
	}
}

type fixedSize struct {
	size remotecommand.TerminalSize
	sent bool
}

// Next returns the size once, then nil: no more resizes.
func (f *fixedSize) Next() *remotecommand.TerminalSize {
	if f.sent {
		return nil
	}
	f.sent = true
	return &f.size
}

// Requests refused before any upgrade get the kube-apiserver's Status, or
// the kubelet's answer when the container is not running.
func TestStreamRequestsRefused(t *testing.T) {
	cfg, cs := startStreamServer(t, newFakeStreams(t))
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		sub   string
		query map[string][]string
		code  int
		msg   string
	}{
		"no command":        {"exec", map[string][]string{"container": {"c"}}, 400, "you must specify at least one command for the container"},
		"no stream":         {"exec", map[string][]string{"container": {"c"}, "command": {"true"}, "stdout": {"false"}, "stderr": {"false"}}, 400, "you must specify at least 1 of stdin, stdout, stderr"},
		"no container":      {"exec", map[string][]string{"command": {"true"}}, 400, "a container name must be specified for pod p, choose one of: [c stopped]"},
		"unknown container": {"attach", map[string][]string{"container": {"nosuch"}}, 400, "container nosuch is not valid for pod p"},
		"not running":       {"exec", map[string][]string{"container": {"stopped"}, "command": {"true"}}, 500, `container not found ("stopped")`},
		"bad port":          {"portforward", map[string][]string{"ports": {"http"}}, 400, `invalid port \"http\": must be between 1 and 65535`},
		"bad bool":          {"attach", map[string][]string{"container": {"c"}, "tty": {"maybe"}}, 400, "tty: "},
	} {
		req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("p").SubResource(tc.sub)
		for k, vs := range tc.query {
			for _, v := range vs {
				req = req.Param(k, v)
			}
		}
		code, body := post(t, hc, req.URL())
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d %s, want %d %q", name, code, body, tc.code, tc.msg)
		}
	}
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("nosuch").SubResource("exec").Param("command", "true").URL()
	if code, body := post(t, hc, u); code != 404 || !strings.Contains(body, `pods \"nosuch\" not found`) {
		t.Errorf("exec in a pod that does not exist: %d %s", code, body)
	}

	// Discovery lists the subresources as the kube-apiserver does.
	rl, err := cs.Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, r := range rl.APIResources {
		if strings.HasPrefix(r.Name, "pods/") {
			found[r.Name] = r.Kind + " " + strings.Join(r.Verbs, ",")
		}
	}
	for name, want := range map[string]string{"pods/exec": "PodExecOptions create,get", "pods/attach": "PodAttachOptions create,get", "pods/portforward": "PodPortForwardOptions create,get"} {
		if found[name] != want {
			t.Errorf("discovery of %s: %q, want %q", name, found[name], want)
		}
	}
}

func TestPortForwardProtocols(t *testing.T) {
	cfg, cs := startStreamServer(t, newFakeStreams(t))
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("p").SubResource("portforward").URL()
	tunnel, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dialers := map[string]httpstream.Dialer{
		"websocket tunnel": tunnel,
		"spdy":             spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u),
	}
	for name, dialer := range dialers {
		t.Run(name, func(t *testing.T) {
			stop, ready := make(chan struct{}), make(chan struct{})
			var errOut strings.Builder
			pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, &errOut)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- pf.ForwardPorts() }()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("port-forward: %v", err)
			}
			ports, err := pf.GetPorts()
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(conn, "ping%d", i)
				conn.(*net.TCPConn).CloseWrite()
				got, err := io.ReadAll(conn)
				conn.Close()
				if want := fmt.Sprintf("p:8080 ping%d", i); err != nil || string(got) != want {
					t.Errorf("connection %d: %v, %q, want %q", i, err, got, want)
				}
			}
			close(stop)
			if err := <-done; err != nil {
				t.Errorf("port-forward: %v", err)
			}
		})
	}
}

// post sends a plain POST (no upgrade) and returns the status code and body.
func post(t *testing.T, hc *http.Client, u *url.URL) (int, string) {
	t.Helper()
	resp, err := hc.Post(u.String(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
