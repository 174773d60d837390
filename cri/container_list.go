package cri

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ListContainers merges every backend's containers, translating container
// and pod IDs both ways. Unknown filter IDs give an empty list.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f, _ := proto.Clone(req.GetFilter()).(*runtimeapi.ContainerFilter)
	handlers, ok, err := s.narrow(f.GetId(), f.GetPodSandboxId(), func(c, p string) {
		if f != nil {
			f.Id, f.PodSandboxId = c, p
		}
	})
	if err != nil || !ok {
		return &runtimeapi.ListContainersResponse{}, err
	}
	resp := &runtimeapi.ListContainersResponse{}
	s.eachBackend(ctx, "list containers", handlers, func(h string, b runtimes.Backend) error {
		items, err := b.ListContainers(ctx, f)
		for _, c := range items {
			if s.translateIDs(h, &c.Id, &c.PodSandboxId) {
				resp.Containers = append(resp.Containers, c)
			}
		}
		return err
	})
	return resp, nil
}

// narrow resolves a filter's container and pod IDs to backend IDs (set
// through the callback) and the one handler to ask. ok is false when a
// filter ID is unknown: the answer is then an empty list, not an error.
func (s *Server) narrow(ctrID, podID string, set func(ctr, pod string)) (handlers []string, ok bool, err error) {
	handlers = s.handlers
	var bc, bp string
	narrowed := false
	for _, q := range []struct {
		k   kind
		id  string
		out *string
	}{{kindContainer, ctrID, &bc}, {kindPod, podID, &bp}} {
		if q.id == "" {
			continue
		}
		t, err := s.lookup(q.k, q.id)
		if errors.Is(err, runtimes.ErrNotFound) {
			return nil, false, nil
		} else if err != nil {
			return nil, false, err
		}
		if narrowed && handlers[0] != t.rec.Handler {
			return nil, false, nil // container and pod on different handlers: nothing matches
		}
		handlers, *q.out, narrowed = []string{t.rec.Handler}, t.rec.BackendID, true
	}
	set(bc, bp)
	return handlers, true, nil
}

// translateIDs rewrites a backend container ID and pod ID (either may be
// nil or empty) to Corral's; false if the container is not Corral's.
func (s *Server) translateIDs(handler string, ctr, pod *string) bool {
	if ctr != nil {
		id, ok := s.ids.corral(kindContainer, handler, *ctr)
		if !ok {
			return false
		}
		*ctr = id
	}
	if pod != nil && *pod != "" {
		id, ok := s.ids.corral(kindPod, handler, *pod)
		if !ok {
			return false
		}
		*pod = id
	}
	return true
}
