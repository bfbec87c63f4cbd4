// Package apiserver serves the Kubernetes REST API over HTTPS for kubectl
// and client-go: discovery, the core/v1 resources of internal/registry,
// server-side tables, watch and pod logs. Every request must present the
// client certificate the generated kubeconfig holds.
package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod-dev/peapod/internal/openapi"
	"github.com/peapod-dev/peapod/internal/registry"
)

// LogStreamer writes a pod's container logs (the pod manager implements it).
type LogStreamer interface {
	StreamLogs(ctx context.Context, pod *corev1.Pod, o *corev1.PodLogOptions, w io.Writer) error
}

// DefaultAddr is where the API is served unless configured otherwise.
const DefaultAddr = "127.0.0.1:6443"

// DefaultMaxRequestBodyBytes is the largest request body accepted (413
// above it); the kube-apiserver's default is also 3 MiB.
const DefaultMaxRequestBodyBytes = 3 << 20

// Config wires the server.
type Config struct {
	// Addr is the listen address; default DefaultAddr, tests use 127.0.0.1:0.
	Addr string
	// Dir holds pki/ and kubeconfig.
	Dir      string
	Registry *registry.Registry
	// Logs serves the log subresource; nil answers it with an error.
	Logs LogStreamer
	// Streams serves exec, attach and portforward; nil answers them with an error.
	Streams Streamer
	Logger  *slog.Logger
	// MaxRequestBodyBytes; default DefaultMaxRequestBodyBytes.
	MaxRequestBodyBytes int64
	// BookmarkInterval is how often watchers that allow bookmarks get one
	// and old events are expired; default one minute (the kube-apiserver
	// sends bookmarks about as often).
	BookmarkInterval time.Duration
}

// Server is the HTTPS API server.
type Server struct {
	cfg     Config
	reg     *registry.Registry
	log     *slog.Logger
	version string

	// openapi serves /openapi/v2 and /openapi/v3 (internal/openapi).
	openapi http.Handler
	fields  fieldManagers
	// token is the bearer token (DIR/pki/token), set by Start before serving.
	token []byte

	mu     sync.Mutex
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// New validates the configuration; Start begins serving.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("apiserver: no registry")
	}
	if cfg.Dir == "" {
		return nil, errors.New("apiserver: no directory")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxRequestBodyBytes <= 0 {
		cfg.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if cfg.BookmarkInterval <= 0 {
		cfg.BookmarkInterval = time.Minute
	}
	oapi, err := openapi.Handler()
	if err != nil {
		return nil, fmt.Errorf("apiserver: OpenAPI documents: %w", err)
	}
	return &Server{
		openapi: oapi,
		cfg:     cfg,
		reg:     cfg.Registry,
		log:     cfg.Logger.With("component", "apiserver"),
		version: KubernetesVersion,
	}, nil
}

// KubernetesVersion is the Kubernetes release whose API peapod serves: that
// of the k8s.io/api module it is built with (v0.37.2 is v1.37.2; a test
// keeps the two in step).
const KubernetesVersion = "v1.37.2"

// Start listens, serves in the background and writes DIR/kubeconfig; it
// returns once requests can be served.
func (s *Server) Start(ctx context.Context) error {
	host, _, err := net.SplitHostPort(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", s.cfg.Addr, err)
	}
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) && !contains(hosts, host) {
		hosts = append(hosts, host)
	}
	p, err := loadOrCreatePKI(filepath.Join(s.cfg.Dir, "pki"), hosts, s.reg.Clock().Now())
	if err != nil {
		return fmt.Errorf("apiserver credentials: %w", err)
	}
	if s.token, err = loadOrCreateToken(filepath.Join(s.cfg.Dir, "pki")); err != nil {
		return fmt.Errorf("apiserver credentials: %w", err)
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler: s,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{p.serving},
			ClientCAs:    p.caPool,
			// Verified here, refused with 401 in the handler unless the
			// request carries the bearer token, so an unauthenticated
			// client gets the API's answer and nothing else.
			ClientAuth: tls.VerifyClientCertIfGiven,
			MinVersion: tls.VersionTLS12,
		},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	runCtx, cancel := context.WithCancel(context.Background())
	srv.BaseContext = func(net.Listener) context.Context { return runCtx }
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serving", "err", err)
		}
	}()
	go s.maintain(runCtx)
	go s.warm()

	s.mu.Lock()
	s.ln, s.srv, s.cancel, s.done = ln, srv, cancel, done
	s.mu.Unlock()

	url := "https://" + s.clientAddr()
	if err := writeKubeconfig(filepath.Join(s.cfg.Dir, "kubeconfig"), url, p); err != nil {
		s.Shutdown(ctx)
		return err
	}
	s.log.Info("serving the Kubernetes API", "url", url, "kubeconfig", filepath.Join(s.cfg.Dir, "kubeconfig"))
	return nil
}

// maintain sends watch bookmarks and expires old events every
// BookmarkInterval while the server runs.
func (s *Server) maintain(ctx context.Context) {
	for {
		t := s.reg.Clock().NewTimer(s.cfg.BookmarkInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
			s.reg.SendBookmarks()
			if err := s.reg.ExpireEvents(ctx); err != nil {
				s.log.Warn("expiring events", "err", err)
			}
		}
	}
}

// Addr is the address the server listens on (with the real port).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// clientAddr is Addr with an unspecified host replaced by 127.0.0.1.
func (s *Server) clientAddr() string {
	host, port, _ := net.SplitHostPort(s.Addr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Shutdown stops accepting requests, ends watches and log streams, and
// waits for the handlers to return or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, cancel, done := s.srv, s.cancel, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	cancel()
	err := srv.Shutdown(ctx)
	<-done
	return err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
