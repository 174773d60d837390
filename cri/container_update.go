package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// UpdateContainerResources changes a container's resources in place.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	u, ok := t.backend.(runtimes.Updater)
	if !ok {
		return nil, unsupported(t.rec.Handler, "UpdateContainerResources")
	}
	if err := u.UpdateContainerResources(ctx, t.rec.BackendID, req.GetLinux()); err != nil {
		return nil, fmt.Errorf("update resources of container %s: %w", t.id, err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}
