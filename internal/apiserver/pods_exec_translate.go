package apiserver

// Adapted from k8s.io/apiserver/pkg/util/proxy (streamtranslator.go,
// websocket.go; Copyright 2023 The Kubernetes Authors, Apache License 2.0):
// the kube-apiserver's translation of the WebSocket v5 remote command
// protocol, which kubectl prefers, to SPDY, which the kubelet (here the
// runtime's CRI streaming server) speaks.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	constants "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	clientspdy "k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

const (
	// wsIdleTimeout is the kube-apiserver's idle timeout for translated streams.
	wsIdleTimeout = 4 * time.Hour
	// wsStatusDeadline bounds writing the final status to a slow client.
	wsStatusDeadline = 10 * time.Second
)

// translateToSPDY accepts the client's WebSocket v5 connection, runs the
// command through an SPDY connection to u and ends with the command's
// status (exit code) on the error channel.
func (s *Server) translateToSPDY(w http.ResponseWriter, r *http.Request, u *url.URL, o *streamOptions) {
	ws, err := openWebSocketStreams(w, r, o)
	if err != nil {
		s.log.Info("websocket upgrade for exec or attach", "url", r.URL.Path, "err", err)
		return
	}
	defer ws.conn.Close()

	rt, err := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{UpgradeTransport: streamTransport, PingPeriod: 5 * time.Second})
	if err != nil {
		ws.writeStatus(apierrors.NewInternalError(err))
		return
	}
	executor, err := remotecommand.NewSPDYExecutorRejectRedirects(rt, clientspdy.NewUpgraderForStreaming(rt), http.MethodPost, u)
	if err != nil {
		ws.writeStatus(apierrors.NewInternalError(err))
		return
	}
	opts := remotecommand.StreamOptions{Tty: o.tty}
	if o.stdin {
		opts.Stdin = ws.stdin
	}
	if o.stdout {
		opts.Stdout = ws.stdout
	}
	if o.stderr && !o.tty {
		opts.Stderr = ws.stderr
	}
	if o.tty {
		opts.TerminalSizeQueue = ws.sizes
	}
	err = executor.StreamWithContext(r.Context(), opts)
	if exitErr, ok := err.(exec.CodeExitError); ok && exitErr.Exited() {
		ws.writeStatus(&apierrors.StatusError{ErrStatus: metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  constants.NonZeroExitCodeReason,
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: constants.ExitCodeCauseType, Message: fmt.Sprintf("%d", exitErr.ExitStatus())}}},
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exitErr),
		}})
		return
	}
	if statusErr, ok := err.(*apierrors.StatusError); ok {
		ws.writeStatus(statusErr)
		return
	}
	if err != nil {
		ws.writeStatus(apierrors.NewInternalError(err))
		return
	}
	ws.writeStatus(&apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusSuccess}})
}

// wsStreams are the client's side of a v5.channel.k8s.io connection.
type wsStreams struct {
	conn          *wsstream.Conn
	stdin         io.Reader
	stdout        io.Writer
	stderr        io.Writer
	sizes         *sizeQueue
	statusChannel io.Writer
}

func openWebSocketStreams(w http.ResponseWriter, r *http.Request, o *streamOptions) (*wsStreams, error) {
	channel := func(real bool, kind wsstream.ChannelType) wsstream.ChannelType {
		if real {
			return kind
		}
		return wsstream.IgnoreChannel
	}
	channels := make([]wsstream.ChannelType, 5)
	channels[constants.StreamStdIn] = channel(o.stdin, wsstream.ReadChannel)
	channels[constants.StreamStdOut] = channel(o.stdout, wsstream.WriteChannel)
	channels[constants.StreamStdErr] = channel(o.stderr && !o.tty, wsstream.WriteChannel)
	channels[constants.StreamErr] = wsstream.WriteChannel
	channels[constants.StreamResize] = wsstream.ReadChannel
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		constants.StreamProtocolV5Name: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(wsIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		return nil, err
	}
	// An empty first write tells the client the connection is ready.
	first := streams[constants.StreamErr]
	switch {
	case o.stdout:
		first = streams[constants.StreamStdOut]
	case o.stderr && !o.tty:
		first = streams[constants.StreamStdErr]
	}
	if _, err := first.Write(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write to the new websocket connection: %w", err)
	}
	ws := &wsStreams{
		conn:          conn,
		stdin:         streams[constants.StreamStdIn],
		stdout:        streams[constants.StreamStdOut],
		stderr:        streams[constants.StreamStdErr],
		statusChannel: streams[constants.StreamErr],
	}
	if o.tty {
		ws.sizes = &sizeQueue{c: make(chan remotecommand.TerminalSize)}
		go ws.sizes.read(r.Context(), streams[constants.StreamResize])
	}
	return ws, nil
}

// writeStatus sends the final status on the error channel.
func (ws *wsStreams) writeStatus(st *apierrors.StatusError) {
	b, err := json.Marshal(st.Status())
	if err != nil {
		return
	}
	ws.conn.SetWriteDeadline(wsStatusDeadline)
	_, _ = ws.statusChannel.Write(b)
}

// sizeQueue turns the resize channel's JSON into terminal sizes.
type sizeQueue struct {
	c chan remotecommand.TerminalSize
}

func (q *sizeQueue) read(ctx context.Context, r io.Reader) {
	defer close(q.c)
	dec := json.NewDecoder(r)
	for {
		var size remotecommand.TerminalSize
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case q.c <- size:
		case <-ctx.Done():
			return
		}
	}
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	size, ok := <-q.c
	if !ok {
		return nil
	}
	return &size
}
