package apiserver

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// runKubectl runs kubectl with exactly these arguments; out is stdout and stderr.
func runKubectl(kubectl string, args ...string) (string, error) {
	out, err := exec.Command(kubectl, args...).CombinedOutput()
	return string(out), err
}

func TestBearerToken(t *testing.T) {
	dir := t.TempDir()
	ts := startServerIn(t, dir)
	tokenPath := filepath.Join(dir, "pki", "token")
	info, err := os.Stat(tokenPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", info, err)
	}
	data, _ := os.ReadFile(tokenPath)
	token := strings.TrimSpace(string(data))
	if len(token) != 64 {
		t.Fatalf("token %q", token)
	}
	caFile := filepath.Join(dir, "pki", "ca.crt")
	host := "https://" + ts.srv.Addr()

	// client-go with the token and no client certificate.
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: caFile}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), newPod("by-token", nil), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create with the bearer token: %v", err)
	}
	// The real kubectl with --token, no kubeconfig credentials.
	kubectl := kubectlPath(t)
	out, err := runKubectl(kubectl, "--kubeconfig", os.DevNull, "--server", host, "--certificate-authority", caFile, "--token", token, "get", "pods", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "pod/by-token" {
		t.Fatalf("kubectl --token: %v %s", err, out)
	}
	// The client certificate still works.
	if _, err := ts.client.CoreV1().Pods("default").Get(context.Background(), "by-token", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	// A wrong token, another scheme, or nothing: 401 and no information.
	rt, err := rest.TransportFor(&rest.Config{Host: host, TLSClientConfig: rest.TLSClientConfig{CAFile: caFile}})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: rt}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, "Bearer"} {
		req, _ := http.NewRequest(http.MethodGet, host+"/api/v1/namespaces/default/pods", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`
		if resp.StatusCode != http.StatusUnauthorized || string(body) != want {
			t.Fatalf("Authorization %q: %d %s", auth, resp.StatusCode, body)
		}
	}
	out, err = runKubectl(kubectl, "--kubeconfig", os.DevNull, "--server", host, "--certificate-authority", caFile, "--token", "wrong", "get", "pods")
	if err == nil || !strings.Contains(out, "You must be logged in to the server (Unauthorized)") {
		t.Fatalf("kubectl with a wrong token: %v %s", err, out)
	}

	// The token is kept across a restart.
	ctx := context.Background()
	ts.srv.Shutdown(ctx)
	func() {
		srv, err := New(Config{Addr: "127.0.0.1:0", Dir: dir, Registry: ts.reg})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown(ctx)
		if string(srv.token) != token {
			t.Fatalf("token after restart %q, want %q", srv.token, token)
		}
	}()
}
