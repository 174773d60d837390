package cri

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// RemovePodSandbox removes the pod and, as the CRI requires, its
// containers. An unknown ID succeeds.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	t, err := s.pod(req.GetPodSandboxId())
	if errors.Is(err, runtimes.ErrNotFound) {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := t.backend.RemovePodSandbox(ctx, t.rec.BackendID); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
		return nil, fmt.Errorf("remove pod sandbox %s: %w", t.id, err)
	}
	for _, c := range s.ids.containersOf(t.id) {
		if err := s.ids.remove(kindContainer, c); err != nil {
			return nil, fmt.Errorf("remove pod sandbox %s: container %s: %w", t.id, c, err)
		}
	}
	if err := s.ids.remove(kindPod, t.id); err != nil {
		return nil, fmt.Errorf("remove pod sandbox %s: %w", t.id, err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}
