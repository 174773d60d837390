package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// Exec returns a streaming URL: the backend's own (Streamer, e.g.
// containerd) or Corral's streaming server's (StreamingRuntime), whose URL
// keeps the Corral ID until the client connects.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := checkCmd(req.GetCmd()); err != nil {
		return nil, err
	}
	t, err := s.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtimeapi.ExecRequest)
	switch b := t.backend.(type) {
	case runtimes.Streamer:
		r.ContainerId = t.rec.BackendID
		return b.Exec(ctx, r)
	case runtimes.StreamingRuntime:
		r.ContainerId = t.id
		return s.stream.lib.GetExec(r)
	}
	return nil, unsupported(t.rec.Handler, "Exec")
}
