// Package hosts reads per-registry configuration in containerd's format,
// DIR/certs.d/<host>/hosts.toml, and makes HTTP transports that honour it.
//
//	server = "https://registry.example.com"   # upstream, tried last
//	[host."http://127.0.0.1:5000"]             # mirrors, tried in file order
//	  capabilities = ["pull", "resolve"]
//	  ca = "ca.pem"                            # or a list; relative to the file
//	  skip_verify = false
//	  client = [["client.crt", "client.key"]]
//	  [host."http://127.0.0.1:5000".header]
//	    x-custom = "value"
//
// Without `server` the registry itself is the fallback after the mirrors; a
// `server` naming a mirror means nothing else is ever contacted. Plain HTTP is
// used only for hosts written with http://. A registry without its own
// directory uses certs.d/_default/hosts.toml when that exists.
package hosts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

var (
	// ErrInvalidConfig means a hosts.toml cannot be used.
	ErrInvalidConfig = errors.New("invalid registry host configuration")
	// ErrPlainHTTP means a request would go over plain HTTP to a host not configured for it.
	ErrPlainHTTP = errors.New("plain HTTP to a registry not configured as http://")
)

// Capabilities a host may have.
const (
	CapPull    = "pull"
	CapResolve = "resolve"
	CapPush    = "push"
)

// Host is one endpoint to fetch a registry's images from.
type Host struct {
	Scheme       string // "https" or "http"
	Address      string // host[:port]
	Capabilities []string
	CAs          []string // PEM files added to the system's roots
	SkipVerify   bool
	Clients      [][2]string // certificate and key files
	Header       http.Header
}

// Can reports whether the host has capability c.
func (h Host) Can(c string) bool { return slices.Contains(h.Capabilities, c) }

// Config finds hosts.toml files under Dir (usually ROOT/certs.d); an empty
// Dir means no configuration: every registry is its own only host.
type Config struct {
	Dir string
}

type hostFields struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	SkipVerify   bool           `toml:"skip_verify"`
	Client       any            `toml:"client"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
}

type file struct {
	Server string `toml:"server"`
	hostFields
	Host map[string]hostFields `toml:"host"`
}

// Hosts returns the hosts to try for registry ("docker.io", "127.0.0.1:5000"),
// in order: the mirrors, then the upstream server.
func (c Config) Hosts(registry string) ([]Host, error) {
	path, data, err := c.read(registry)
	if err != nil {
		return nil, err
	}
	upstream := defaultServer(registry)
	if data == nil {
		h := Host{Scheme: "https", Address: upstream, Capabilities: []string{CapPull, CapResolve, CapPush}}
		if h.CAs, h.Clients, err = c.dockerCerts(registry); err != nil {
			return nil, err
		}
		return []Host{h}, nil
	}
	var f file
	if err := toml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, path, err)
	}
	order, err := hostOrder(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, path, err)
	}
	dir := filepath.Dir(path)
	var out []Host
	for _, key := range order {
		h, err := makeHost(key, f.Host[key], dir)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: host %q: %v", ErrInvalidConfig, path, key, err)
		}
		out = append(out, h)
	}
	server := f.Server
	if server == "" {
		server = "https://" + upstream
	}
	h, err := makeHost(server, f.hostFields, dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: server %q: %v", ErrInvalidConfig, path, server, err)
	}
	if !slices.ContainsFunc(out, func(o Host) bool { return o.Scheme == h.Scheme && o.Address == h.Address }) {
		out = append(out, h)
	}
	return out, nil
}

func (c Config) read(registry string) (string, []byte, error) {
	if c.Dir == "" {
		return "", nil, nil
	}
	if strings.ContainsAny(registry, "/\\") || registry == "" || registry == "." || registry == ".." {
		return "", nil, fmt.Errorf("%w: registry name %q", ErrInvalidConfig, registry)
	}
	for _, d := range []string{registry, "_default"} {
		p := filepath.Join(c.Dir, d, "hosts.toml")
		data, err := os.ReadFile(p)
		if err == nil {
			return p, data, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", nil, fmt.Errorf("read registry configuration: %w", err)
		}
	}
	return "", nil, nil
}

// dockerCerts reads Docker's layout of certs.d/<host>/ without hosts.toml,
// as containerd does: *.crt files are CAs, *.cert with the same-named *.key
// are client certificates.
func (c Config) dockerCerts(registry string) (cas []string, clients [][2]string, err error) {
	if c.Dir == "" {
		return nil, nil, nil
	}
	dir := filepath.Join(c.Dir, registry)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read registry certificates: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch filepath.Ext(e.Name()) {
		case ".crt":
			cas = append(cas, p)
		case ".cert":
			key := strings.TrimSuffix(p, ".cert") + ".key"
			if _, err := os.Stat(key); err != nil {
				return nil, nil, fmt.Errorf("%w: client certificate %s has no key %s", ErrInvalidConfig, p, key)
			}
			clients = append(clients, [2]string{p, key})
		}
	}
	return cas, clients, nil
}

// defaultServer is where a registry's API lives when nothing says otherwise.
func defaultServer(registry string) string {
	if registry == "docker.io" || registry == "index.docker.io" {
		return "registry-1.docker.io"
	}
	return registry
}

// hostOrder lists the [host."…"] tables in file order: mirrors are tried in
// the order written, which a decoded map loses.
func hostOrder(data []byte) ([]string, error) {
	var p unstable.Parser
	p.Reset(data)
	var order []string
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table {
			continue
		}
		var parts []string
		it := e.Key()
		for it.Next() {
			parts = append(parts, string(it.Node().Data))
		}
		if len(parts) == 2 && parts[0] == "host" && !slices.Contains(order, parts[1]) {
			order = append(order, parts[1])
		}
	}
	return order, p.Error()
}

func makeHost(raw string, f hostFields, dir string) (Host, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Host{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Host{}, fmt.Errorf("scheme %q is neither http nor https", u.Scheme)
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" && p != "/v2" {
		return Host{}, fmt.Errorf("path %q: only the registry root (/v2) is supported", u.Path)
	}
	if f.OverridePath {
		return Host{}, errors.New("override_path is not supported")
	}
	h := Host{Scheme: u.Scheme, Address: u.Host, Capabilities: f.Capabilities, SkipVerify: f.SkipVerify, Header: http.Header{}}
	if h.Capabilities == nil {
		h.Capabilities = []string{CapPull, CapResolve, CapPush}
	}
	if h.CAs, err = stringList(f.CA, dir); err != nil {
		return Host{}, fmt.Errorf("ca: %w", err)
	}
	if h.Clients, err = clientPairs(f.Client, dir); err != nil {
		return Host{}, fmt.Errorf("client: %w", err)
	}
	for k, v := range f.Header {
		switch v := v.(type) {
		case string:
			h.Header.Add(k, v)
		case []any:
			for _, s := range v {
				h.Header.Add(k, fmt.Sprint(s))
			}
		default:
			return Host{}, fmt.Errorf("header %q: want a string or a list of strings", k)
		}
	}
	return h, nil
}

func stringList(v any, dir string) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{abs(v, dir)}, nil
	case []any:
		var out []string
		for _, s := range v {
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("want strings, got %T", s)
			}
			out = append(out, abs(str, dir))
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got %T", v)
}

// clientPairs reads `client = "both.pem"`, `client = ["a.pem", "b.pem"]` or
// `client = [["cert", "key"], …]` as containerd does.
func clientPairs(v any, dir string) ([][2]string, error) {
	list, ok := v.([]any)
	if !ok {
		single, err := stringList(v, dir)
		var out [][2]string
		for _, s := range single {
			out = append(out, [2]string{s, s})
		}
		return out, err
	}
	var out [][2]string
	for _, item := range list {
		switch item := item.(type) {
		case string:
			out = append(out, [2]string{abs(item, dir), abs(item, dir)})
		case []any:
			pair, err := stringList(item, dir)
			if err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("want [certificate, key], got %v", item)
			}
			out = append(out, [2]string{pair[0], pair[1]})
		default:
			return nil, fmt.Errorf("want strings or pairs, got %T", item)
		}
	}
	return out, nil
}

func abs(p, dir string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Transport returns an HTTP transport for h: its CAs, client certificates and
// headers, and no plain HTTP unless h is an http:// host.
func (h Host) Transport() (http.RoundTripper, error) {
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("go-containerregistry's default transport is not an *http.Transport")
	}
	t := base.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: h.SkipVerify} //nolint:gosec // skip_verify is the user's explicit choice
	if len(h.CAs) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, ca := range h.CAs {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("registry %s: read CA: %w", h.Address, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry %s: %s holds no PEM certificate", h.Address, ca)
			}
		}
		cfg.RootCAs = pool
	}
	for _, c := range h.Clients {
		pair, err := tls.LoadX509KeyPair(c[0], c[1])
		if err != nil {
			return nil, fmt.Errorf("registry %s: load client certificate: %w", h.Address, err)
		}
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	t.TLSClientConfig = cfg
	return &guard{base: t, host: h}, nil
}

type guard struct {
	base http.RoundTripper
	host Host
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !(g.host.Scheme == "http" && req.URL.Host == g.host.Address) {
		return nil, fmt.Errorf("%w: %s (add [host.\"http://%s\"] to its hosts.toml)", ErrPlainHTTP, req.URL.Redacted(), req.URL.Host)
	}
	if len(g.host.Header) > 0 && req.URL.Host == g.host.Address {
		req = req.Clone(req.Context())
		for k, vs := range g.host.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	return g.base.RoundTrip(req)
}
