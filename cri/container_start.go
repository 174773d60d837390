package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StartContainer starts a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if err := t.backend.StartContainer(ctx, t.rec.BackendID); err != nil {
		return nil, fmt.Errorf("start container %s: %w", t.id, err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}
