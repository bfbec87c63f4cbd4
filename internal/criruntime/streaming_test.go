package criruntime_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"
)

// syncBuffer is a WriteCloser safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Close() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The runtime's side of Exec, Attach and PortForward.
func TestStreams(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sbc := e.sandboxConfig("streams", runtimeapi.NamespaceMode_POD)
	sb := e.runSandbox(sbc)
	server := e.runContainer(sb, sbc, containerConfig("server", runtimeapi.NamespaceMode_POD,
		"sh", "-c", "mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p 8080 -h /www"))

	// Exec with stdin, and a non-zero exit.
	var out, errOut syncBuffer
	err := e.svc.ExecStream(ctx, server, []string{"sh", "-c", "cat; echo oops >&2; exit 3"}, strings.NewReader("from stdin"), &out, &errOut, false, nil)
	var exitErr utilexec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 {
		t.Errorf("exec exiting 3: %v", err)
	}
	if out.String() != "from stdin" || errOut.String() != "oops\n" {
		t.Errorf("exec output %q, stderr %q", out.String(), errOut.String())
	}
	// Exec with a terminal.
	var ttyOut syncBuffer
	if err := e.svc.ExecStream(ctx, server, []string{"tty"}, nil, &ttyOut, nil, true, nil); err != nil {
		t.Errorf("exec with a terminal: %v", err)
	}
	if !strings.Contains(ttyOut.String(), "/dev/pts/") {
		t.Errorf("tty in an exec with a terminal: %q", ttyOut.String())
	}

	// Attach: the container reads a line from its stdin and answers.
	c := containerConfig("reader", runtimeapi.NamespaceMode_POD, "sh", "-c", "read line; echo got $line")
	c.Stdin, c.StdinOnce = true, true
	reader := e.runContainer(sb, sbc, c)
	var attachOut syncBuffer
	if err := e.svc.AttachStream(ctx, reader, strings.NewReader("hello\n"), &attachOut, &attachOut, false, nil); err != nil {
		t.Errorf("attach: %v", err)
	}
	if st := e.waitExited(reader); st.ExitCode != 0 || !strings.Contains(attachOut.String(), "got hello") {
		t.Errorf("attached container: exit %d, output %q", st.ExitCode, attachOut.String())
	}

	// PortForward to the pod's loopback.
	e.execUntil(server, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/")
	client, stream := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- e.svc.PortForwardStream(ctx, sb, 8080, stream) }()
	if _, err := io.WriteString(client, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, _ := io.ReadAll(client)
	client.Close()
	if err := <-done; err != nil {
		t.Errorf("port forward: %v", err)
	}
	if !strings.Contains(string(resp), "200 OK") || !strings.Contains(string(resp), "forwarded") {
		t.Errorf("response through the forwarded port: %q", resp)
	}
}
