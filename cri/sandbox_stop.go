package cri

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// StopPodSandbox is idempotent: kubelet retries stops of pods that are
// already gone, so an unknown ID succeeds.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	t, err := s.pod(req.GetPodSandboxId())
	if errors.Is(err, runtimes.ErrNotFound) {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := t.backend.StopPodSandbox(ctx, t.rec.BackendID); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
		return nil, fmt.Errorf("stop pod sandbox %s: %w", t.id, err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}
