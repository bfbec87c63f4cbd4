package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

const streamPod = `apiVersion: v1
kind: Pod
metadata:
  name: stream
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: reader
    image: busybox
    imagePullPolicy: Never
    stdin: true
    command: ["sh", "-c", "while read line; do echo got $line; done"]
`

// attachPod reads its stdin once: the end of an attached session's stdin
// ends it.
const attachPod = `apiVersion: v1
kind: Pod
metadata:
  name: attach
spec:
  restartPolicy: Never
  containers:
  - name: reader
    image: busybox
    imagePullPolicy: Never
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "while read line; do echo got $line; done; echo bye"]
`

// ttyPod is a shell on a terminal, for attach -it.
const ttyPod = `apiVersion: v1
kind: Pod
metadata:
  name: tty
spec:
  restartPolicy: Never
  containers:
  - name: sh
    image: busybox
    imagePullPolicy: Never
    stdin: true
    tty: true
    command: ["sh"]
`

// kubectl's two protocols for exec, attach and cp: WebSocket v5 (its
// default, translated to SPDY by the API server) and SPDY (its fallback).
var remoteCommandModes = []struct{ name, env string }{
	{"websocket", "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true"},
	{"spdy", "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"},
}

// kubectl exec, attach, cp and port-forward through the API server's
// pods/exec, pods/attach and pods/portforward, the pod manager and the
// runtime's streaming server.
func TestKubectlStreaming(t *testing.T) {
	d := startDaemon(t)
	d.importBusybox()
	d.cleanupPods("default")
	d.create(streamPod)
	d.waitPod("default", "stream", 60*time.Second, "Running", running)
	ex := func(t *testing.T, env string, stdin io.Reader, args ...string) (string, string, int) {
		return d.forTest(t).kubectlEnv([]string{env}, stdin, args...)
	}

	for _, mode := range remoteCommandModes {
		t.Run("exec over "+mode.name, func(t *testing.T) {
			if out, errOut, code := ex(t, mode.env, nil, "exec", "stream", "-c", "web", "--", "echo", "hi"); out != "hi\n" || code != 0 {
				t.Errorf("exec echo: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if out, errOut, code := ex(t, mode.env, nil, "exec", "stream", "-c", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3"); code != 3 || out != "out\n" || !strings.HasPrefix(errOut, "err\n") {
				t.Errorf("exec exiting 3: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			in := strings.Repeat("line of stdin\n", 5000)
			if out, errOut, code := ex(t, mode.env, strings.NewReader(in), "exec", "-i", "stream", "-c", "web", "--", "sh", "-c", "cat; echo done"); code != 0 || out != in+"done\n" {
				t.Errorf("exec -i: exit %d, %d bytes of stdout (want %d), stderr %q", code, len(out), len(in)+5, errOut)
			}
			// Without -c: the first container, with kubectl's notice.
			if out, errOut, code := ex(t, mode.env, nil, "exec", "stream", "--", "hostname"); out != "stream\n" || code != 0 || !strings.Contains(errOut, `Defaulted container "web"`) {
				t.Errorf("exec without -c: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if _, errOut, code := ex(t, mode.env, nil, "exec", "stream", "-c", "nosuch", "--", "true"); code != 1 || !strings.Contains(errOut, "container nosuch is not valid for pod stream") {
				t.Errorf("exec in an unknown container: exit %d, stderr %q", code, errOut)
			}
			// kubectl logs (at -v=4) when it falls back from WebSocket to SPDY.
			if _, errOut, code := ex(t, mode.env, strings.NewReader("x"), "-v=4", "exec", "-i", "stream", "-c", "web", "--", "cat"); code != 0 || strings.Contains(errOut, "fallback") {
				t.Errorf("exec -v=4: exit %d, stderr %s", code, errOut)
			}
		})
	}

	t.Run("exec -it", func(t *testing.T) {
		for _, mode := range remoteCommandModes {
			// kubectl on a terminal of 45 rows and 123 columns sends that
			// size, which may reach the container's terminal just after the
			// command has started; then the terminal is resized (SIGWINCH
			// to kubectl) once the command has seen the first size.
			script := `until [ "$(stty size 2>/dev/null)" = "45 123" ]; do sleep 0.05; done; echo first; ` +
				`until [ "$(stty size 2>/dev/null)" = "24 80" ]; do sleep 0.05; done; echo second; tty; exit 4`
			term := startOnTerminal(t, mode.env, 45, 123, "--kubeconfig", d.kubeconfig, "exec", "-it", "stream", "-c", "web", "--", "sh", "-c", script)
			if !term.waitFor("first") {
				t.Fatalf("%s: exec -it never saw the first size: %q", mode.name, term.output())
			}
			term.resize(24, 80)
			code := term.wait()
			if out := term.output(); code != 4 || !strings.Contains(out, "second") || !regexp.MustCompile(`/dev/pts/\d+`).MatchString(out) {
				t.Errorf("%s: exec -it: exit %d (want 4), output %q", mode.name, code, out)
			}
		}
	})

	t.Run("cp", func(t *testing.T) {
		dir := t.TempDir()
		data := bytes.Repeat([]byte("peapod cp\x00\xff"), 100000)
		if err := os.WriteFile(filepath.Join(dir, "in.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, mode := range remoteCommandModes {
			remote := "/tmp/cp-" + mode.name
			if _, errOut, code := ex(t, mode.env, nil, "cp", filepath.Join(dir, "in.bin"), "stream:"+remote, "-c", "web"); code != 0 {
				t.Fatalf("%s: kubectl cp to the pod: exit %d: %s", mode.name, code, errOut)
			}
			if out, _, _ := ex(t, mode.env, nil, "exec", "stream", "-c", "web", "--", "wc", "-c", remote); !strings.HasPrefix(strings.TrimSpace(out), fmt.Sprint(len(data))) {
				t.Errorf("%s: size in the pod: %q, want %d", mode.name, out, len(data))
			}
			local := filepath.Join(dir, "out-"+mode.name)
			if _, errOut, code := ex(t, mode.env, nil, "cp", "stream:"+remote, local, "-c", "web"); code != 0 {
				t.Fatalf("%s: kubectl cp from the pod: exit %d: %s", mode.name, code, errOut)
			}
			if got, err := os.ReadFile(local); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: copied back %d bytes (%v), want the %d sent", mode.name, len(got), err, len(data))
			}
		}
	})

	t.Run("attach", func(t *testing.T) {
		dt := d.forTest(t)
		for _, mode := range remoteCommandModes {
			dt.mustKubectl("delete", "pod", "attach", "--ignore-not-found", "--grace-period=1")
			dt.waitGone("default", "attach", 30*time.Second)
			dt.create(attachPod)
			dt.waitPod("default", "attach", 60*time.Second, "Running", running)
			out, errOut, code := ex(t, mode.env, strings.NewReader("hello\nworld\n"), "attach", "-i", "attach")
			if code != 0 || !strings.Contains(out, "got hello\ngot world\nbye\n") {
				t.Errorf("%s: attach -i: exit %d, stdout %q, stderr %q", mode.name, code, out, errOut)
			}
			dt.waitPod("default", "attach", 60*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		}
		// A container that is not running cannot be attached to.
		if _, errOut, code := ex(t, remoteCommandModes[0].env, nil, "attach", "attach"); code == 0 || !strings.Contains(errOut, "completed pod") {
			t.Errorf("attach to a completed pod: exit %d, stderr %q", code, errOut)
		}
		dt.mustKubectl("delete", "pod", "attach", "--grace-period=1")
	})

	t.Run("attach -it", func(t *testing.T) {
		dt := d.forTest(t)
		for _, mode := range remoteCommandModes {
			dt.mustKubectl("delete", "pod", "tty", "--ignore-not-found", "--grace-period=1")
			dt.waitGone("default", "tty", 30*time.Second)
			dt.create(ttyPod)
			dt.waitPod("default", "tty", 60*time.Second, "Running", running)
			term := startOnTerminal(t, mode.env, 45, 123, "--kubeconfig", d.kubeconfig, "attach", "-it", "tty")
			// The quotes keep the echoed input from matching the output.
			term.write(`until [ "$(stty size)" = "45 123" ]; do sleep 0.05; done; echo fi''rst` + "\n")
			if !term.waitFor("first") {
				t.Fatalf("%s: attach -it never saw the first size: %q", mode.name, term.output())
			}
			term.resize(24, 80)
			term.write(`until [ "$(stty size)" = "24 80" ]; do sleep 0.05; done; echo sec''ond; exit` + "\n")
			if code := term.wait(); code != 0 || !strings.Contains(term.output(), "second") {
				t.Errorf("%s: attach -it: exit %d, output %q", mode.name, code, term.output())
			}
			dt.waitPod("default", "tty", 60*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		}
		dt.mustKubectl("delete", "pod", "tty", "--grace-period=1")
	})

	t.Run("attach to a running container", func(t *testing.T) {
		// The reader of the long-running pod answers; its stdin stays
		// open after the client leaves (no stdinOnce), so the client is
		// stopped once it has seen the answer.
		dt := d.forTest(t)
		for _, mode := range remoteCommandModes {
			pr, pw := io.Pipe()
			cmd := exec.Command("kubectl", "--kubeconfig", d.kubeconfig, "attach", "-i", "stream", "-c", "reader")
			cmd.Env = append(os.Environ(), mode.env)
			cmd.Stdin = pr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			var got []string
			// Repeat until the answer comes: the first lines may be sent
			// before the attach is complete.
			go func() {
				for i := 0; ; i++ {
					if _, err := fmt.Fprintf(pw, "ping%d\n", i); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			for sc.Scan() {
				got = append(got, sc.Text())
				if strings.HasPrefix(sc.Text(), "got ping") {
					break
				}
			}
			pw.Close()
			cmd.Process.Kill()
			cmd.Wait()
			if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "got ping") {
				t.Errorf("%s: attach -i to the running reader: %q", mode.name, got)
			}
		}
		if p, _ := dt.getPod("default", "stream"); p == nil || !running(p) {
			t.Errorf("the pod is no longer running after attach: %+v", p)
		}
	})

	for _, mode := range []struct{ name, env string }{
		{"websocket tunnel", "KUBECTL_PORT_FORWARD_WEBSOCKETS=true"},
		{"spdy", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"},
	} {
		t.Run("port-forward over "+mode.name, func(t *testing.T) {
			cmd := exec.Command("kubectl", "--kubeconfig", d.kubeconfig, "-v=4", "port-forward", "pod/stream", ":8080")
			cmd.Env = append(os.Environ(), mode.env)
			var errOut syncBuffer
			cmd.Stderr = &errOut
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			sc := bufio.NewScanner(stdout)
			re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)
			var port string
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					port = m[1]
					break
				}
			}
			if port == "" {
				t.Fatalf("kubectl port-forward printed no local port; stderr: %s", errOut.String())
			}
			go io.Copy(io.Discard, stdout)
			for i := range 3 { // three connections through one session
				got, err := get("http://127.0.0.1:" + port + "/")
				if err != nil || got != "hello-from-pod\n" {
					t.Errorf("GET %d through kubectl port-forward: %v, %q; stderr: %s", i, err, got, errOut.String())
				}
			}
			// kubectl logs (at -v=4) when it falls back from WebSocket to SPDY.
			if strings.Contains(errOut.String(), "fallback") {
				t.Errorf("kubectl port-forward fell back to SPDY: %s", errOut.String())
			}
		})
	}

	// client-go's executors and dialers with no fallback: the WebSocket v5
	// translation and the SPDY-over-WebSocket tunnel are what served them.
	t.Run("client-go without fallback", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", d.kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("stream").SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "web", Command: []string{"sh", "-c", "cat; exit 5"}, Stdin: true, Stdout: true, Stderr: true}, scheme.ParameterCodec)
		wsExec, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, req.URL().String())
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err = wsExec.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: strings.NewReader("v5\n"), Stdout: &out, Stderr: io.Discard})
		var exitErr utilexec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 5 || out.String() != "v5\n" {
			t.Errorf("WebSocket v5 exec: %v, stdout %q", err, out.String())
		}

		pfURL := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("default").Name("stream").SubResource("portforward").URL()
		dialer, err := portforward.NewSPDYOverWebsocketDialer(pfURL, cfg)
		if err != nil {
			t.Fatal(err)
		}
		stop, ready := make(chan struct{}), make(chan struct{})
		var pfErr strings.Builder
		pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, &pfErr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- pf.ForwardPorts() }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("port-forward over a WebSocket tunnel: %v", err)
		}
		ports, err := pf.GetPorts()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local)); err != nil || got != "hello-from-pod\n" {
			t.Errorf("GET through the tunnel: %v, %q; %s", err, got, pfErr.String())
		}
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("port-forward: %v", err)
		}
	})

	// Nothing the sessions ran is left in the containers.
	for _, c := range []string{"web", "reader"} {
		out := d.mustKubectl("exec", "stream", "-c", c, "--", "ps", "-o", "pid,args")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] == "1" || f[1] == "ps" {
				continue
			}
			t.Errorf("left in container %s: %s", c, l)
		}
	}
	d.mustKubectl("delete", "pod", "stream", "--grace-period=1")
	d.waitGone("default", "stream", 30*time.Second)
	d.assertNoLeaks()
}

// kubectlEnv runs kubectl with extra environment and stdin and returns its
// stdout, stderr and exit code.
func (d *daemon) kubectlEnv(env []string, stdin io.Reader, args ...string) (string, string, int) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exitErr):
		return stdout.String(), stderr.String(), exitErr.ExitCode()
	default:
		d.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
		return "", "", -1
	}
}

func get(url string) (string, error) {
	c := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// terminal is a command (kubectl) run on a pseudo-terminal, as a user's shell
// runs it: its session leader, with the terminal as controlling terminal.
type terminal struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	update chan struct{} // signalled on new output
	done   chan struct{} // closed when the output has ended
}

func startOnTerminal(t *testing.T, env string, rows, cols uint16, args ...string) *terminal {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, master: master, update: make(chan struct{}, 1), done: make(chan struct{})}
	term.resize(rows, cols)
	term.cmd = exec.Command("kubectl", args...)
	term.cmd.Env = append(os.Environ(), env)
	term.cmd.Stdin, term.cmd.Stdout, term.cmd.Stderr = slave, slave, slave
	term.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	t.Cleanup(func() {
		term.cmd.Process.Kill()
		term.wait()
	})
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			select {
			case term.update <- struct{}{}:
			default:
			}
			if err != nil { // EIO once kubectl has exited
				return
			}
		}
	}()
	return term
}

// write types s on the terminal.
func (term *terminal) write(s string) {
	if _, err := io.WriteString(term.master, s); err != nil {
		term.t.Fatalf("write to pty: %v", err)
	}
}

// resize sets the terminal's size; the kernel signals SIGWINCH to kubectl.
func (term *terminal) resize(rows, cols uint16) {
	if err := unix.IoctlSetWinsize(int(term.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		term.t.Fatalf("resize pty: %v", err)
	}
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// waitFor waits until the output contains s; false if the output ends first.
func (term *terminal) waitFor(s string) bool {
	for !strings.Contains(term.output(), s) {
		select {
		case <-term.update:
		case <-term.done:
			return strings.Contains(term.output(), s)
		}
	}
	return true
}

// wait waits for kubectl and returns its exit code.
func (term *terminal) wait() int {
	if term.cmd.ProcessState == nil {
		term.cmd.Wait()
		<-term.done
		term.master.Close()
	}
	return term.cmd.ProcessState.ExitCode()
}
