package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ContainerStats reports one container's usage.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, ok := t.backend.(runtimes.Stats)
	if !ok {
		return nil, unsupported(t.rec.Handler, "ContainerStats")
	}
	cs, err := st.ContainerStats(ctx, t.rec.BackendID)
	if err != nil {
		return nil, fmt.Errorf("stats of container %s: %w", t.id, err)
	}
	if cs.GetAttributes() != nil {
		cs.Attributes.Id = t.id
	}
	return &runtimeapi.ContainerStatsResponse{Stats: cs}, nil
}
