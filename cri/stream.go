package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"corral.io/corral/runtimes"
)

// streamServer is the exec/attach/port-forward server of k8s.io/cri-streaming
// (SPDY and WebSocket) for every backend that implements
// runtimes.StreamingRuntime. URLs carry Corral IDs; dispatch translates them
// when the client connects.
type streamServer struct {
	lib  streaming.Server
	l    net.Listener
	http *http.Server
	done chan struct{}
}

func newStreamServer(addr string, s *Server) (*streamServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cri: streaming server on %s: %w", addr, err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	lib, err := streaming.NewServer(cfg, dispatch{s})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("cri: streaming server: %w", err)
	}
	ss := &streamServer{lib: lib, l: l, done: make(chan struct{}),
		http: &http.Server{Handler: lib, ReadHeaderTimeout: time.Minute}}
	go func() {
		defer close(ss.done)
		if err := ss.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("cri: streaming server stopped", "addr", cfg.Addr, "err", err)
		}
	}()
	return ss, nil
}

func (ss *streamServer) addr() string { return ss.l.Addr().String() }

// close ends the listener and every open stream (exec sessions die with the
// agent's CRI server anyway).
func (ss *streamServer) close() error {
	err := ss.http.Close()
	<-ss.done
	return err
}

// dispatch is the streaming.Runtime of the library: it resolves the Corral
// ID to the backend and the backend's own ID.
type dispatch struct{ s *Server }

func (d dispatch) runtime(k kind, id string) (streaming.Runtime, string, error) {
	t, err := d.s.lookup(k, id)
	if err != nil {
		return nil, "", err
	}
	sr, ok := t.backend.(runtimes.StreamingRuntime)
	if !ok {
		return nil, "", unsupported(t.rec.Handler, "streaming")
	}
	return sr.StreamingRuntime(), t.rec.BackendID, nil
}

func (d dispatch) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	rt, bid, err := d.runtime(kindContainer, id)
	if err != nil {
		return err
	}
	return rt.Exec(ctx, bid, cmd, in, out, errw, tty, resize)
}

func (d dispatch) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	rt, bid, err := d.runtime(kindContainer, id)
	if err != nil {
		return err
	}
	return rt.Attach(ctx, bid, in, out, errw, tty, resize)
}

func (d dispatch) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	rt, bid, err := d.runtime(kindPod, podID)
	if err != nil {
		return err
	}
	return rt.PortForward(ctx, bid, port, stream)
}
