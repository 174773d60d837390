package cri

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// StopContainer is idempotent: an unknown or vanished container succeeds.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	t, err := s.container(req.GetContainerId())
	if errors.Is(err, runtimes.ErrNotFound) {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(max(req.GetTimeout(), 0)) * time.Second
	if err := t.backend.StopContainer(ctx, t.rec.BackendID, timeout); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
		return nil, fmt.Errorf("stop container %s: %w", t.id, err)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}
