package openapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// kubectlServer is the Handler behind TLS with just enough of the rest of
// the API for kubectl: legacy discovery of pods and a create that records
// its query.
type kubectlServer struct {
	*httptest.Server
	mu      sync.Mutex
	queries []string // of the pod creates
}

func newKubectlServer(t *testing.T) *kubectlServer {
	t.Helper()
	s := &kubectlServer{}
	mux := http.NewServeMux()
	mux.Handle("/openapi/", newHandler(t))
	reply := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}
	}
	mux.Handle("GET /api", reply(`{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`))
	mux.Handle("GET /apis", reply(`{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`))
	mux.Handle("GET /api/v1", reply(`{"kind":"APIResourceList","groupVersion":"v1","resources":[`+
		`{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","shortNames":["po"],`+
		`"verbs":["create","delete","deletecollection","get","list","patch","update","watch"]}]}`))
	mux.HandleFunc("POST /api/v1/namespaces/{namespace}/pods", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.RawQuery)
		s.mu.Unlock()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
	s.Server = httptest.NewTLSServer(mux)
	t.Cleanup(s.Close)
	return s
}

// kubectl runs the kubectl in PATH against s with a fresh cache.
func (s *kubectlServer) kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	kubeconfig := filepath.Join(dir, "kubeconfig")
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: test
  user:
    token: test
contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
`, s.URL, base64.StdEncoding.EncodeToString(ca))
	if err := os.WriteFile(kubeconfig, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(dir, "cache")}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG=")
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func needKubectl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl is not in PATH (CI=true, refusing to skip)")
		}
		t.Skip("kubectl is not in PATH")
	}
}

const podManifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: server
    image: busybox
`

// TestKubectlCreateAsksForStrictValidation: kubectl's default
// --validate=strict finds fieldValidation in /openapi/v3 and leaves the
// validation to the server, rather than failing or validating client-side.
func TestKubectlCreateAsksForStrictValidation(t *testing.T) {
	needKubectl(t)
	s := newKubectlServer(t)
	out, err := s.kubectl(t, podManifest, "create", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "pod/web created") {
		t.Errorf("kubectl create printed %q", out)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queries) != 1 || !strings.Contains(s.queries[0], "fieldValidation=Strict") {
		t.Errorf("pod creates had queries %q, want one with fieldValidation=Strict", s.queries)
	}
}

func TestKubectlExplain(t *testing.T) {
	needKubectl(t)
	s := newKubectlServer(t)
	for _, args := range [][]string{
		{"explain", "pod.spec.containers"},
		// The same from /openapi/v2, fetched as protobuf.
		{"explain", "pod.spec.containers", "--output=plaintext-openapiv2"},
	} {
		out, err := s.kubectl(t, "", args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		for _, want := range []string{"KIND:", "Pod", "containers", "FIELDS:", "image", "livenessProbe"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl %s: no %q in\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
}
