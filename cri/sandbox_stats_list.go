package cri

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ListPodSandboxStats merges the backends that report stats.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f, _ := proto.Clone(req.GetFilter()).(*runtimeapi.PodSandboxStatsFilter)
	handlers := s.handlers
	if f.GetId() != "" {
		t, err := s.pod(f.GetId())
		if errors.Is(err, runtimes.ErrNotFound) {
			return &runtimeapi.ListPodSandboxStatsResponse{}, nil
		} else if err != nil {
			return nil, err
		}
		handlers, f.Id = []string{t.rec.Handler}, t.rec.BackendID
	}
	resp := &runtimeapi.ListPodSandboxStatsResponse{}
	s.eachBackend(ctx, "list pod sandbox stats", handlers, func(h string, b runtimes.Backend) error {
		st, ok := b.(runtimes.Stats)
		if !ok {
			return nil
		}
		items, err := st.ListPodSandboxStats(ctx, f)
		for _, ps := range items {
			if s.translatePodStats(h, ps) {
				resp.Stats = append(resp.Stats, ps)
			}
		}
		return err
	})
	return resp, nil
}
