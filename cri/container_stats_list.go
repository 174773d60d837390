package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ListContainerStats merges the backends that report stats; the others
// contribute nothing rather than failing kubelet's summary.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f, _ := proto.Clone(req.GetFilter()).(*runtimeapi.ContainerStatsFilter)
	handlers, ok, err := s.narrow(f.GetId(), f.GetPodSandboxId(), func(c, p string) {
		if f != nil {
			f.Id, f.PodSandboxId = c, p
		}
	})
	if err != nil || !ok {
		return &runtimeapi.ListContainerStatsResponse{}, err
	}
	resp := &runtimeapi.ListContainerStatsResponse{}
	s.eachBackend(ctx, "list container stats", handlers, func(h string, b runtimes.Backend) error {
		st, ok := b.(runtimes.Stats)
		if !ok {
			return nil
		}
		items, err := st.ListContainerStats(ctx, f)
		for _, c := range items {
			if c.GetAttributes() != nil && s.translateIDs(h, &c.Attributes.Id, nil) {
				resp.Stats = append(resp.Stats, c)
			}
		}
		return err
	})
	return resp, nil
}
