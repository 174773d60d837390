package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSandboxStatus answers NotFound for an unknown ID (kubelet relies on
// it to tell a vanished pod from a failing runtime).
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	t, err := s.pod(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	resp, err := t.backend.PodSandboxStatus(ctx, t.rec.BackendID, req.GetVerbose())
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %s: %w", t.id, err)
	}
	if resp.GetStatus() != nil {
		resp.Status.Id = t.id
	}
	resp.ContainersStatuses = s.translateStatuses(t.rec.Handler, resp.GetContainersStatuses())
	return resp, nil
}

// translateStatuses rewrites backend container IDs to Corral's and drops
// containers Corral did not create.
func (s *Server) translateStatuses(handler string, in []*runtimeapi.ContainerStatus) []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for _, c := range in {
		if id, ok := s.ids.corral(kindContainer, handler, c.GetId()); ok {
			c.Id = id
			out = append(out, c)
		}
	}
	return out
}
