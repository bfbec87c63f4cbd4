package apiserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/peapod-dev/peapod/internal/registry"
)

// testServer is a running API server in a temporary directory.
type testServer struct {
	dir        string
	kubeconfig string
	srv        *Server
	reg        *registry.Registry
	client     *kubernetes.Clientset
}

// fakeLogs answers the log subresource with a fixed text per container.
type fakeLogs struct{}

func (fakeLogs) StreamLogs(ctx context.Context, pod *corev1.Pod, o *corev1.PodLogOptions, w io.Writer) error {
	_, err := io.WriteString(w, "log of "+pod.Name+"/"+o.Container+"\n")
	return err
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	return startServerIn(t, t.TempDir())
}

func startServerIn(t testing.TB, dir string) *testServer {
	t.Helper()
	st, err := registry.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := registry.New(st, clock.RealClock{}, "testnode")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.EnsureNode(context.Background(), registry.NodeOptions{KubeletVersion: "v1.37.2", ContainerRuntimeVersion: "peapod://test", RootDir: dir}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", Dir: dir, Registry: reg, Logs: fakeLogs{}, Logger: logger})
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
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// No client-side rate limit: tests and benchmarks measure the server.
	cfg.QPS, cfg.Burst = -1, -1
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{dir: dir, kubeconfig: kubeconfig, srv: srv, reg: reg, client: client}
}

// kubectlPath finds the kubectl the tests drive; without it the kubectl
// tests fail under CI and are skipped (with the reason) elsewhere.
func kubectlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kubectl not on PATH: %v", err)
		}
		t.Skipf("kubectl not on PATH: %v", err)
	}
	return p
}

// kubectl runs kubectl against the server and returns stdout, stderr and
// whether it succeeded.
func (ts *testServer) kubectl(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(kubectlPath(t), append([]string{"--kubeconfig", ts.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func (ts *testServer) mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := ts.kubectl(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}
