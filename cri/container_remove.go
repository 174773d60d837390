package cri

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// RemoveContainer is idempotent: an unknown or vanished container succeeds.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	t, err := s.container(req.GetContainerId())
	if errors.Is(err, runtimes.ErrNotFound) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := t.backend.RemoveContainer(ctx, t.rec.BackendID); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
		return nil, fmt.Errorf("remove container %s: %w", t.id, err)
	}
	if err := s.ids.remove(kindContainer, t.id); err != nil {
		return nil, fmt.Errorf("remove container %s: %w", t.id, err)
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}
