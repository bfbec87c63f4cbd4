package hosts

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, registry, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, registry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, registry, "hosts.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func addrs(hs []Host) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Scheme+"://"+h.Address)
	}
	return strings.Join(out, " ")
}

func TestHosts(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "docker.io", `
[host."https://mirror-b.example"]
  capabilities = ["pull"]
  ca = "ca.pem"
  skip_verify = true
  [host."https://mirror-b.example".header]
    x-test = "1"

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
  client = [["c.crt", "c.key"]]
`)
	write(t, dir, "quay.io", `server = "http://127.0.0.1:5000"
[host."http://127.0.0.1:5000"]
`)
	write(t, dir, "_default", `[host."https://fallback.example"]`)
	c := Config{Dir: dir}
	for registry, want := range map[string]string{
		"docker.io":      "https://mirror-b.example http://127.0.0.1:5000 https://registry-1.docker.io",
		"quay.io":        "http://127.0.0.1:5000",
		"gcr.io":         "https://fallback.example https://gcr.io",
		"127.0.0.1:9999": "https://fallback.example https://127.0.0.1:9999",
	} {
		hs, err := c.Hosts(registry)
		if err != nil {
			t.Fatalf("%s: %v", registry, err)
		}
		if got := addrs(hs); got != want {
			t.Errorf("%s: hosts %q, want %q", registry, got, want)
		}
	}
	hs, _ := c.Hosts("docker.io")
	if b := hs[0]; b.Can(CapResolve) || !b.Can(CapPull) || !b.SkipVerify || b.CAs[0] != filepath.Join(dir, "docker.io", "ca.pem") || b.Header.Get("x-test") != "1" {
		t.Errorf("mirror-b: %+v", b)
	}
	if m := hs[1]; m.Clients[0] != [2]string{filepath.Join(dir, "docker.io", "c.crt"), filepath.Join(dir, "docker.io", "c.key")} {
		t.Errorf("client pair: %v", m.Clients)
	}

	none, err := Config{}.Hosts("docker.io")
	if err != nil || addrs(none) != "https://registry-1.docker.io" {
		t.Errorf("no configuration: %v %v", addrs(none), err)
	}
	write(t, dir, "bad.example", `server = "ftp://x"`)
	if _, err := c.Hosts("bad.example"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ftp server: %v", err)
	}
	write(t, dir, "bad2.example", `[host."https://m.example/some/path"]`)
	if _, err := c.Hosts("bad2.example"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("mirror path: %v", err)
	}
	if _, err := c.Hosts("../etc"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("registry with a path: %v", err)
	}
}

func TestTransportRefusesUnconfiguredPlainHTTP(t *testing.T) {
	var gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gotHeader = r.Header.Get("X-Test") }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	secure, err := Host{Scheme: "https", Address: addr}.Transport()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&http.Client{Transport: secure}).Get(srv.URL); !errors.Is(err, ErrPlainHTTP) {
		t.Errorf("plain HTTP through an https host: %v", err)
	}
	plain, err := Host{Scheme: "http", Address: addr, Header: http.Header{"X-Test": {"1"}}}.Transport()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: plain}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotHeader != "1" {
		t.Errorf("configured header not sent: %q", gotHeader)
	}
}

func TestDockerCertsLayout(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry.example:5000")
	if err := os.MkdirAll(reg, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "client.cert", "client.key"} {
		if err := os.WriteFile(filepath.Join(reg, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := Config{Dir: dir}.Hosts("registry.example:5000")
	if err != nil || len(hs) != 1 {
		t.Fatalf("Hosts = %v, %v", hs, err)
	}
	h := hs[0]
	if addrs(hs) != "https://registry.example:5000" || len(h.CAs) != 1 || h.CAs[0] != filepath.Join(reg, "ca.crt") ||
		len(h.Clients) != 1 || h.Clients[0] != [2]string{filepath.Join(reg, "client.cert"), filepath.Join(reg, "client.key")} {
		t.Errorf("host %+v", h)
	}
}
