package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"corral.io/corral/agent/unixsock"
	corralv1 "corral.io/corral/api/corral/v1"
)

// SocketPath is where the API listens for a given root directory.
func SocketPath(root string) string {
	return filepath.Join(root, "run", "corral", "api.sock")
}

// Options configure a Server.
type Options struct {
	Log     *slog.Logger // nil discards
	Version string       // reported by SystemService.Version
}

// Server implements corralv1.UnitServiceServer and SystemServiceServer on
// top of a Manager.
type Server struct {
	corralv1.UnimplementedUnitServiceServer
	corralv1.UnimplementedSystemServiceServer

	m       Manager
	log     *slog.Logger
	version string
	// proc reads a process's parent and command line; replaced in tests.
	proc func(pid int) (ppid int, cmdline string, err error)
}

// New returns a server for m. Call Serve to accept connections.
func New(m Manager, opt Options) *Server {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{m: m, log: log, version: opt.Version, proc: readProc}
}

// Listen creates the API socket at path: the directory with mode 0755, the
// socket with 0666 (see the access policy in auth.go). A stale socket file
// left by a crashed agent is removed; a live one is an error, so that two
// agents never steal each other's socket.
func Listen(path string) (net.Listener, error) {
	return unixsock.Listen(path, 0o666)
}

// Serve answers requests on l until ctx is done, then stops: it lets unary
// calls finish for up to five seconds and cuts streams (log follows) short.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	g := grpc.NewServer(
		grpc.Creds(peerCreds{}),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	)
	corralv1.RegisterUnitServiceServer(g, s)
	corralv1.RegisterSystemServiceServer(g, s)

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
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return fmt.Errorf("api server: %w", err)
}

// unaryInterceptor is the single edge wrapper: it authorizes, maps domain
// errors to gRPC codes, and logs every call.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	uid := callerUID(ctx)
	err := authorize(uid, info.FullMethod)
	var resp any
	if err == nil {
		resp, err = h(ctx, req)
		err = toStatus(err)
	}
	s.logCall(ctx, info.FullMethod, uid, start, err)
	return resp, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	uid := callerUID(ss.Context())
	err := authorize(uid, info.FullMethod)
	if err == nil {
		err = toStatus(h(srv, ss))
	}
	s.logCall(ss.Context(), info.FullMethod, uid, start, err)
	return err
}

func (s *Server) logCall(ctx context.Context, method string, uid int, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.Int("uid", uid),
		slog.Duration("duration", time.Since(start)),
		slog.String("code", code.String()),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
	}
	s.log.LogAttrs(ctx, level, "api call", attrs...)
}
