package cri

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ExecSync runs a command in the container and waits (probes use it); the
// backend enforces the timeout and reports it as context.DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if err := checkCmd(req.GetCmd()); err != nil {
		return nil, err
	}
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	e, ok := t.backend.(runtimes.Execer)
	if !ok {
		return nil, unsupported(t.rec.Handler, "ExecSync")
	}
	timeout := time.Duration(max(req.GetTimeout(), 0)) * time.Second
	stdout, stderr, code, err := e.ExecSync(ctx, t.rec.BackendID, req.GetCmd(), timeout)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", t.id, err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout, Stderr: stderr, ExitCode: code}, nil
}
