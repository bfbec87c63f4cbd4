package podmanager

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// probeTransport is the HTTP probes' RoundTripper: one connection per
// request, dialed, written and read on the probe's own goroutine, closed
// with the body. It stands in for the kubelet's http.Transport with
// keep-alives and compression disabled and no proxy, which does the same
// on the wire but starts three goroutines per connection (dial, read and
// write loops); with dozens of probes a second those cost the daemon more
// than the probes themselves.
type probeTransport struct{}

// probeTLS: probes do not verify the server's certificate, as the kubelet's.
var probeTLS = &tls.Config{InsecureSkipVerify: true}

func (probeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The scheme is checked before dialing, as http.Transport does (a
	// redirect may name any scheme).
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, errors.New("unsupported protocol scheme " + req.URL.Scheme)
	}
	ctx := req.Context()
	port := req.URL.Port()
	if port == "" {
		port = "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(req.URL.Hostname(), port))
	if err != nil {
		return nil, err
	}
	// The request's deadline bounds every read and write; cancelling it
	// (the daemon stopping) interrupts them.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline, which is the request's, may pass
			// just before the context notices.
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	if req.URL.Scheme == "https" {
		cfg := probeTLS.Clone()
		cfg.ServerName = req.URL.Hostname()
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(err)
		}
		conn = tc
	}
	r := *req
	r.Close = true // "Connection: close", as without keep-alives
	if err := r.Write(conn); err != nil {
		return fail(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return fail(err)
	}
	res.Body = &connBody{ReadCloser: res.Body, conn: conn, stop: stop}
	return res, nil
}

// connBody closes the response's connection with the body.
type connBody struct {
	io.ReadCloser
	conn net.Conn
	stop func() bool
}

func (b *connBody) Close() error {
	b.stop()
	b.ReadCloser.Close()
	return b.conn.Close()
}
