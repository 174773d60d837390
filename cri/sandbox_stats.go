package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// PodSandboxStats reports a pod's usage and its containers'.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	t, err := s.pod(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st, ok := t.backend.(runtimes.Stats)
	if !ok {
		return nil, unsupported(t.rec.Handler, "PodSandboxStats")
	}
	ps, err := st.PodSandboxStats(ctx, t.rec.BackendID)
	if err != nil {
		return nil, fmt.Errorf("stats of pod sandbox %s: %w", t.id, err)
	}
	s.translatePodStats(t.rec.Handler, ps)
	return &runtimeapi.PodSandboxStatsResponse{Stats: ps}, nil
}

// translatePodStats rewrites the pod's and its containers' IDs; false if
// the pod is not Corral's.
func (s *Server) translatePodStats(handler string, ps *runtimeapi.PodSandboxStats) bool {
	if ps.GetAttributes() == nil {
		return false
	}
	id, ok := s.ids.corral(kindPod, handler, ps.Attributes.Id)
	if !ok {
		return false
	}
	ps.Attributes.Id = id
	if l := ps.GetLinux(); l != nil {
		var kept []*runtimeapi.ContainerStats
		for _, c := range l.Containers {
			if c.GetAttributes() != nil && s.translateIDs(handler, &c.Attributes.Id, nil) {
				kept = append(kept, c)
			}
		}
		l.Containers = kept
	}
	return true
}
