package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// Attach returns a streaming URL, like Exec.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtimeapi.AttachRequest)
	switch b := t.backend.(type) {
	case runtimes.Streamer:
		r.ContainerId = t.rec.BackendID
		return b.Attach(ctx, r)
	case runtimes.StreamingRuntime:
		r.ContainerId = t.id
		return s.stream.lib.GetAttach(r)
	}
	return nil, unsupported(t.rec.Handler, "Attach")
}
