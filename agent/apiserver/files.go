package apiserver

import (
	"context"
	"fmt"

	corralv1 "corral.io/corral/api/corral/v1"
)

type unitFileOp func(ctx context.Context, names []string, now bool) ([]Change, error)

func unitFiles(ctx context.Context, verb string, op unitFileOp, req *corralv1.UnitFilesRequest) (*corralv1.UnitFilesResponse, error) {
	if len(req.GetNames()) == 0 {
		return nil, fmt.Errorf("%s: no unit names: %w", verb, ErrInvalid)
	}
	changes, err := op(ctx, req.GetNames(), req.GetNow())
	if err != nil {
		return nil, err
	}
	resp := &corralv1.UnitFilesResponse{}
	for _, c := range changes {
		resp.Changes = append(resp.Changes, &corralv1.Change{Type: c.Type, Path: c.Path, Source: c.Source})
	}
	return resp, nil
}

// Enable implements corralv1.UnitServiceServer.
func (s *Server) Enable(ctx context.Context, req *corralv1.UnitFilesRequest) (*corralv1.UnitFilesResponse, error) {
	return unitFiles(ctx, "enable", s.m.Enable, req)
}

// Disable implements corralv1.UnitServiceServer.
func (s *Server) Disable(ctx context.Context, req *corralv1.UnitFilesRequest) (*corralv1.UnitFilesResponse, error) {
	return unitFiles(ctx, "disable", s.m.Disable, req)
}

// Mask implements corralv1.UnitServiceServer.
func (s *Server) Mask(ctx context.Context, req *corralv1.UnitFilesRequest) (*corralv1.UnitFilesResponse, error) {
	return unitFiles(ctx, "mask", s.m.Mask, req)
}

// Unmask implements corralv1.UnitServiceServer.
func (s *Server) Unmask(ctx context.Context, req *corralv1.UnitFilesRequest) (*corralv1.UnitFilesResponse, error) {
	return unitFiles(ctx, "unmask", s.m.Unmask, req)
}

// IsEnabled implements corralv1.UnitServiceServer.
func (s *Server) IsEnabled(ctx context.Context, req *corralv1.IsEnabledRequest) (*corralv1.IsEnabledResponse, error) {
	resp := &corralv1.IsEnabledResponse{}
	for _, n := range req.GetNames() {
		st, err := s.m.IsEnabled(ctx, n)
		if err != nil {
			return nil, err
		}
		resp.Units = append(resp.Units, &corralv1.UnitFileState{Name: n, State: st})
	}
	return resp, nil
}

// DaemonReload implements corralv1.UnitServiceServer.
func (s *Server) DaemonReload(ctx context.Context, _ *corralv1.DaemonReloadRequest) (*corralv1.DaemonReloadResponse, error) {
	if err := s.m.DaemonReload(ctx); err != nil {
		return nil, err
	}
	return &corralv1.DaemonReloadResponse{}, nil
}
