package apiserver

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	gwebsocket "github.com/gorilla/websocket"
	constants "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// tunnelPortForward serves kubectl's port-forward over WebSocket: the client
// speaks SPDY inside WebSocket binary messages (subprotocol
// "SPDY/3.1+portforward.k8s.io"), which is carried unchanged to an SPDY
// connection with the runtime's streaming server, as the kube-apiserver's
// TunnelingHandler does. The backend is upgraded first, so that a refusal
// reaches the client as a failed upgrade (kubectl then falls back to SPDY
// and shows the message).
func (s *Server) tunnelPortForward(w http.ResponseWriter, r *http.Request, u *url.URL) {
	var protocols []string
	for _, p := range gwebsocket.Subprotocols(r) {
		if strings.HasPrefix(p, constants.WebsocketsSPDYTunnelingPrefix) && strings.HasSuffix(p, constants.KubernetesSuffix) {
			protocols = append(protocols, strings.TrimPrefix(p, constants.WebsocketsSPDYTunnelingPrefix))
		}
	}

	var d net.Dialer
	backend, err := d.DialContext(r.Context(), "tcp", u.Host)
	if err != nil {
		proxyResponder{s}.Error(w, r, err)
		return
	}
	defer backend.Close()
	up, err := http.NewRequestWithContext(r.Context(), http.MethodPost, u.String(), nil)
	if err != nil {
		proxyResponder{s}.Error(w, r, err)
		return
	}
	up.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	up.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	for _, p := range protocols {
		up.Header.Add(httpstream.HeaderProtocolVersion, p)
	}
	if err := up.Write(backend); err != nil {
		proxyResponder{s}.Error(w, r, err)
		return
	}
	br := bufio.NewReader(backend)
	resp, err := http.ReadResponse(br, up)
	if err != nil {
		proxyResponder{s}.Error(w, r, err)
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The streaming server's refusal, passed on as it is.
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	var negotiated []string
	if p := strings.TrimSpace(resp.Header.Get(httpstream.HeaderProtocolVersion)); p != "" {
		negotiated = []string{constants.WebsocketsSPDYTunnelingPrefix + p}
	}
	upgrader := gwebsocket.Upgrader{
		// Authenticated by client certificate, not by a browser's origin.
		CheckOrigin:  func(*http.Request) bool { return true },
		Subprotocols: negotiated,
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Info("websocket upgrade for port-forward", "url", r.URL.Path, "err", err)
		return
	}
	tunnel := portforward.NewTunnelingConnection("server", ws)
	defer tunnel.Close()

	// Either side ending ends both.
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			tunnel.Close()
			backend.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer closeBoth()
		_, _ = io.Copy(backend, tunnel)
	}()
	_, err = io.Copy(tunnel, br)
	closeBoth()
	wg.Wait()
	if err != nil && !isClosedConn(err) {
		s.log.Debug("port-forward tunnel", "url", r.URL.Path, "err", err)
	}
}

func isClosedConn(err error) bool {
	return errors.Is(err, net.ErrClosed) || gwebsocket.IsCloseError(err, gwebsocket.CloseNormalClosure)
}
