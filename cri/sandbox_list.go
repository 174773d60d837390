package cri

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ListPodSandbox merges every backend's pods. A filter ID is translated and
// asks only the pod's backend; an unknown one gives an empty list.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f, _ := proto.Clone(req.GetFilter()).(*runtimeapi.PodSandboxFilter)
	handlers := s.handlers
	if f.GetId() != "" {
		t, err := s.pod(f.GetId())
		if errors.Is(err, runtimes.ErrNotFound) {
			return &runtimeapi.ListPodSandboxResponse{}, nil
		} else if err != nil {
			return nil, err
		}
		handlers, f.Id = []string{t.rec.Handler}, t.rec.BackendID
	}
	resp := &runtimeapi.ListPodSandboxResponse{}
	s.eachBackend(ctx, "list pod sandboxes", handlers, func(h string, b runtimes.Backend) error {
		items, err := b.ListPodSandbox(ctx, f)
		for _, p := range items {
			if id, ok := s.ids.corral(kindPod, h, p.GetId()); ok {
				p.Id = id
				resp.Items = append(resp.Items, p)
			}
		}
		return err
	})
	return resp, nil
}

// eachBackend calls fn for each handler in turn. A failing backend (down,
// or broken) is logged and skipped: one backend must not hide the others'
// pods from kubelet; Status shows it as not ready.
func (s *Server) eachBackend(ctx context.Context, what string, handlers []string, fn func(h string, b runtimes.Backend) error) {
	for _, h := range handlers {
		if err := fn(h, s.backends[h]); err != nil {
			s.log.Warn("cri: backend skipped", "op", what, "handler", h, "err", err)
		}
	}
}
