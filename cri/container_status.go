package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus answers NotFound for an unknown ID.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp, err := t.backend.ContainerStatus(ctx, t.rec.BackendID, req.GetVerbose())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", t.id, err)
	}
	if resp.GetStatus() != nil {
		resp.Status.Id = t.id
	}
	return resp, nil
}
