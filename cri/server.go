// Package cri serves the Kubernetes CRI v1 RuntimeService and ImageService
// on <root>/run/corral/cri.sock and routes every pod to one of several
// runtime backends (runtimes.Backend) by its runtime handler.
//
// Kubelet only ever sees Corral's own IDs (64 hex characters, like
// containerd's); the mapping to (handler, backend ID) lives in the state DB
// so that it survives an agent restart. Inner code returns errors wrapping
// the runtimes sentinels; edge.go is the one place that turns them into gRPC
// codes and logs each call. One file per RPC, named like containerd's.
package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/unixsock"
	"corral.io/corral/runtimes"
)

// MaxMsgSize bounds a request: kubelet's largest messages (pod configs with
// many annotations) are far below it, and a huge request must not cost the
// agent its memory.
const MaxMsgSize = 16 << 20

// AnnotationRuntime picks the handler of a pod that has no runtime_handler
// (static pods in standalone kubelet cannot resolve a RuntimeClass).
const AnnotationRuntime = "corral.io/runtime"

// Options configure a Server. Backends and Store are required.
type Options struct {
	// Backends maps runtime handler names to backends. The caller builds it
	// from the config file; nothing registers itself.
	Backends map[string]runtimes.Backend
	// DefaultHandler serves pods that name no handler.
	DefaultHandler string
	// Store keeps the ID maps; the agent passes its state DB.
	Store Store
	// StreamAddress is host:port for exec/attach/port-forward URLs
	// (default 127.0.0.1:0).
	StreamAddress string
	// CNIConfDir is where NetworkReady looks for a CNI configuration when
	// the default backend does not report network readiness itself.
	CNIConfDir string
	// Version is the agent's version, reported as RuntimeVersion.
	Version string
	Log     *slog.Logger
}

// Server implements runtimeapi.RuntimeServiceServer and
// runtimeapi.ImageServiceServer.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	backends map[string]runtimes.Backend
	handlers []string // sorted names
	def      string
	ids      *ids
	stream   *streamServer
	cniDir   string
	version  string
	log      *slog.Logger
}

// SocketPath is the CRI socket under root.
func SocketPath(root string) string { return filepath.Join(root, "run", "corral", "cri.sock") }

// New builds a server and starts its streaming listener; Serve answers CRI
// calls and Close (or the end of Serve) stops everything.
func New(opts Options) (*Server, error) {
	if len(opts.Backends) == 0 || opts.Store == nil {
		return nil, errors.New("cri: backends and store are required")
	}
	s := &Server{
		backends: opts.Backends, def: opts.DefaultHandler, cniDir: opts.CNIConfDir,
		version: opts.Version, log: opts.Log,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.version == "" {
		s.version = "0.0.0"
	}
	for name := range s.backends {
		s.handlers = append(s.handlers, name)
	}
	sort.Strings(s.handlers)
	if _, ok := s.backends[s.def]; !ok {
		return nil, fmt.Errorf("cri: default handler %q is not among the backends (%s)", s.def, strings.Join(s.handlers, ", "))
	}
	var err error
	if s.ids, err = loadIDs(opts.Store); err != nil {
		return nil, err
	}
	addr := opts.StreamAddress
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if s.stream, err = newStreamServer(addr, s); err != nil {
		return nil, err
	}
	return s, nil
}

// StreamAddr is the address the streaming server listens on.
func (s *Server) StreamAddr() string { return s.stream.addr() }

// Close stops the streaming server; Serve calls it when it returns.
func (s *Server) Close() error { return s.stream.close() }

// Listen creates the CRI socket at path (mode 0600: the CRI can run
// anything as root, so only root may connect), its directory, and removes
// a stale socket left by a crash.
func Listen(path string) (net.Listener, error) {
	return unixsock.Listen(path, 0o600)
}

// Serve answers CRI calls on l until ctx is done. It lets unary calls finish
// for up to five seconds and ends event streams, then closes the streaming
// server.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	defer s.Close()
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.ChainUnaryInterceptor(s.unaryEdge),
		grpc.ChainStreamInterceptor(s.streamEdge),
	)
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			g.Stop()
			<-done
		}
	}()
	err := g.Serve(l)
	if ctx.Err() != nil {
		<-stopped
		return nil
	}
	g.Stop()
	return fmt.Errorf("cri: serve: %w", err)
}
