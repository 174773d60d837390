package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ReopenContainerLog lets kubelet rotate a container's log file.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r, ok := t.backend.(runtimes.LogReopener)
	if !ok {
		return nil, unsupported(t.rec.Handler, "ReopenContainerLog")
	}
	if err := r.ReopenContainerLog(ctx, t.rec.BackendID); err != nil {
		return nil, fmt.Errorf("reopen log of container %s: %w", t.id, err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
