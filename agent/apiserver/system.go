package apiserver

import (
	"context"
	"fmt"
	"runtime"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	corralv1 "corral.io/corral/api/corral/v1"
)

// Version implements corralv1.SystemServiceServer.
func (s *Server) Version(context.Context, *corralv1.VersionRequest) (*corralv1.VersionResponse, error) {
	v := s.version
	if v == "" {
		v = "devel"
	}
	return &corralv1.VersionResponse{Version: v, GoVersion: runtime.Version(), Features: []string{"cgroup", "sd_notify", "peercred"}}, nil
}

// Health implements corralv1.SystemServiceServer.
func (s *Server) Health(ctx context.Context, _ *corralv1.HealthRequest) (*corralv1.HealthResponse, error) {
	st, err := s.m.SystemState(ctx)
	if err != nil {
		return nil, err
	}
	return &corralv1.HealthResponse{State: st.State, FailedUnits: uint32(st.FailedUnits), Jobs: uint32(st.Jobs)}, nil
}

// Reexecer is the optional ability behind SystemService.Reexec: re-execute
// the core (path "" = the same binary) keeping every unit, container and
// listening socket. It returns once the re-exec is under way; the caller's
// connection is then closed and clients reconnect to the new image through
// the same socket.
type Reexecer interface {
	Reexec(ctx context.Context, path string) error
}

// Reexec implements corralv1.SystemServiceServer: daemon-reexec, or upgrade
// to the binary named by the request's path.
func (s *Server) Reexec(ctx context.Context, req *corralv1.ReexecRequest) (*corralv1.ReexecResponse, error) {
	r, ok := s.m.(Reexecer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "daemon-reexec is not supported by this agent")
	}
	if err := r.Reexec(ctx, req.GetPath()); err != nil {
		return nil, err
	}
	return &corralv1.ReexecResponse{}, nil
}

// Shutdown implements corralv1.SystemServiceServer.
func (s *Server) Shutdown(ctx context.Context, req *corralv1.ShutdownRequest) (*corralv1.ShutdownResponse, error) {
	a := req.GetAction()
	switch a {
	case "poweroff", "reboot", "halt", "exit":
	default:
		return nil, fmt.Errorf("shutdown action %q (want poweroff, reboot, halt or exit): %w", a, ErrInvalid)
	}
	if err := s.m.Shutdown(ctx, a); err != nil {
		return nil, err
	}
	return &corralv1.ShutdownResponse{}, nil
}
