package criruntime_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The Exec, Attach and PortForward RPCs and their streaming server, driven
// as crictl and the kubelet drive them: client-go's remotecommand (SPDY and
// WebSocket) and portforward against the returned URL.
func TestStreamingServer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("streaming", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	server := e.runContainer(sb, sbc, containerConfig("server", runtimeapi.NamespaceMode_POD,
		"sh", "-c", "mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 8080 -h /www"))

	exec := func(t *testing.T, req *runtimeapi.ExecRequest) string {
		t.Helper()
		resp, err := e.svc.Exec(ctx, req)
		if err != nil {
			t.Fatalf("Exec %q: %v", req.Cmd, err)
		}
		return resp.Url
	}

	t.Run("validation", func(t *testing.T) {
		exited := e.createContainer(sb, sbc, containerConfig("created", runtimeapi.NamespaceMode_POD, "true"))
		for name, tc := range map[string]struct {
			req  *runtimeapi.ExecRequest
			want codes.Code
		}{
			"unknown container": {&runtimeapi.ExecRequest{ContainerId: "nope", Cmd: []string{"true"}, Stdout: true}, codes.NotFound},
			"not running":       {&runtimeapi.ExecRequest{ContainerId: exited, Cmd: []string{"true"}, Stdout: true}, codes.FailedPrecondition},
			"no command":        {&runtimeapi.ExecRequest{ContainerId: server, Stdout: true}, codes.InvalidArgument},
			"no stream":         {&runtimeapi.ExecRequest{ContainerId: server, Cmd: []string{"true"}}, codes.InvalidArgument},
			"tty with stderr":   {&runtimeapi.ExecRequest{ContainerId: server, Cmd: []string{"true"}, Tty: true, Stdout: true, Stderr: true}, codes.InvalidArgument},
		} {
			if _, err := e.svc.Exec(ctx, tc.req); code(err) != tc.want {
				t.Errorf("Exec, %s: %v, want %v", name, err, tc.want)
			}
		}
		if _, err := e.svc.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: exited, Stdout: true}); code(err) != codes.FailedPrecondition {
			t.Errorf("Attach to a created container: %v", err)
		}
		if _, err := e.svc.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: server, Tty: true, Stdout: true, Stderr: true}); code(err) != codes.InvalidArgument {
			t.Errorf("Attach with tty and stderr: %v", err)
		}
		if _, err := e.svc.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "nope", Port: []int32{80}}); code(err) != codes.NotFound {
			t.Errorf("PortForward to an unknown sandbox: %v", err)
		}
		if _, err := e.svc.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: []int32{70000}}); code(err) != codes.InvalidArgument {
			t.Errorf("PortForward to port 70000: %v", err)
		}
		if _, err := e.svc.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: exited}); err != nil {
			t.Fatal(err)
		}
	})

	for _, proto := range []string{"SPDY", "WebSocket"} {
		t.Run("exec over "+proto, func(t *testing.T) {
			var out, errOut strings.Builder
			err := stream(t, proto, exec(t, &runtimeapi.ExecRequest{ContainerId: server, Cmd: []string{"sh", "-c", "echo hi; echo there >&2"}, Stdout: true, Stderr: true}),
				remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
			if err != nil || out.String() != "hi\n" || errOut.String() != "there\n" {
				t.Errorf("echo: %v, stdout %q, stderr %q", err, out.String(), errOut.String())
			}
			err = stream(t, proto, exec(t, &runtimeapi.ExecRequest{ContainerId: server, Cmd: []string{"sh", "-c", "exit 3"}, Stdout: true}),
				remotecommand.StreamOptions{Stdout: io.Discard})
			if exitCode(err) != 3 {
				t.Errorf("exit 3: %v", err)
			}
			err = stream(t, proto, exec(t, &runtimeapi.ExecRequest{ContainerId: server, Cmd: []string{"no-such-command"}, Stdout: true, Stderr: true}),
				remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
			// As with containerd: an error, not an exit code.
			if err == nil || !strings.Contains(err.Error(), "executable file not found") {
				t.Errorf("a command that does not exist: %v", err)
			}
		})
	}

	t.Run("stdin", func(t *testing.T) {
		var out strings.Builder
		err := stream(t, "SPDY", exec(t, &runtimeapi.ExecRequest{ContainerId: server, Cmd: []string{"sh", "-c", "cat; echo done"}, Stdin: true, Stdout: true}),
			remotecommand.StreamOptions{Stdin: strings.NewReader("round\ntrip\n"), Stdout: &out})
		if err != nil || out.String() != "round\ntrip\ndone\n" {
			t.Errorf("cat: %v, %q", err, out.String())
		}
	})

	t.Run("tty and resize", func(t *testing.T) {
		// The shell waits until it sees the first size, says so, and
		// waits for the second, which the client sends once it has read
		// "first". The first size may arrive just after the process has
		// started (as with the kubelet and containerd): stty fails on a
		// terminal that has no size yet.
		script := `until [ "$(stty size 2>/dev/null)" = "45 123" ]; do sleep 0.05; done; echo first; ` +
			`until [ "$(stty size 2>/dev/null)" = "24 80" ]; do sleep 0.05; done; echo second; [ -t 0 ] && [ -t 1 ] && echo terminal`
		sizes := &sizeQueue{c: make(chan *remotecommand.TerminalSize, 2)}
		sizes.c <- &remotecommand.TerminalSize{Width: 123, Height: 45}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := stream(t, "SPDY", exec(t, &runtimeapi.ExecRequest{ContainerId: server, Cmd: []string{"sh", "-c", script}, Tty: true, Stdout: true}),
				remotecommand.StreamOptions{Stdout: pw, Tty: true, TerminalSizeQueue: sizes})
			pw.CloseWithError(err)
			done <- err
		}()
		var lines []string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			lines = append(lines, line)
			if line == "first" {
				sizes.c <- &remotecommand.TerminalSize{Width: 80, Height: 24}
			}
		}
		close(sizes.c)
		if err := <-done; err != nil {
			t.Errorf("exec with a terminal: %v", err)
		}
		if strings.Join(lines, ",") != "first,second,terminal" {
			t.Errorf("output with a terminal: %q", lines)
		}
	})

	t.Run("attach", func(t *testing.T) {
		c := containerConfig("reader", runtimeapi.NamespaceMode_POD, "sh", "-c", "while read line; do echo got $line; echo err $line >&2; done")
		c.Stdin, c.StdinOnce = true, true
		reader := e.runContainer(sb, sbc, c)
		resp, err := e.svc.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: reader, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut strings.Builder
		// The end of stdin closes the container's (StdinOnce): it exits.
		err = stream(t, "SPDY", resp.Url, remotecommand.StreamOptions{Stdin: strings.NewReader("hello\nworld\n"), Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Errorf("attach: %v", err)
		}
		if st := e.waitExited(reader); st.ExitCode != 0 || out.String() != "got hello\ngot world\n" || errOut.String() != "err hello\nerr world\n" {
			t.Errorf("attached container: exit %d, stdout %q, stderr %q", st.ExitCode, out.String(), errOut.String())
		}
	})

	t.Run("port forward", func(t *testing.T) {
		e.execUntil(server, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
		resp, err := e.svc.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: []int32{8080}})
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(resp.Url)
		if err != nil {
			t.Fatal(err)
		}
		transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
		stop, ready := make(chan struct{}), make(chan struct{})
		var pfErr strings.Builder
		pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, &pfErr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- pf.ForwardPorts() }()
		<-ready
		ports, err := pf.GetPorts()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // two connections over one forwarding session
			got, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
			if err != nil || got != "forwarded\n" {
				t.Errorf("GET %d through the forwarded port: %v, %q", i, err, got)
			}
		}
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("port forwarding: %v", err)
		}
		if pfErr.Len() > 0 {
			t.Errorf("port forwarding errors: %s", pfErr.String())
		}
	})
}

// stream connects to a streaming URL with client-go's SPDY or WebSocket
// executor (v4.channel.k8s.io, which the CRI streaming server speaks over
// WebSocket).
func stream(t *testing.T, proto, rawURL string, o remotecommand.StreamOptions) error {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	var ex remotecommand.Executor
	if proto == "SPDY" {
		ex, err = remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
	} else {
		ex, err = remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, http.MethodGet, rawURL, "v4.channel.k8s.io")
	}
	if err != nil {
		t.Fatal(err)
	}
	return ex.StreamWithContext(context.Background(), o)
}

func exitCode(err error) int {
	var exitErr exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitStatus()
	}
	return 0
}

type sizeQueue struct {
	c chan *remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize { return <-q.c }

func httpGet(u string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
