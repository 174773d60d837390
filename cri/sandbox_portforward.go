package cri

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// PortForward returns a streaming URL for the pod, like Exec.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	t, err := s.pod(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtimeapi.PortForwardRequest)
	switch b := t.backend.(type) {
	case runtimes.Streamer:
		r.PodSandboxId = t.rec.BackendID
		return b.PortForward(ctx, r)
	case runtimes.StreamingRuntime:
		r.PodSandboxId = t.id
		return s.stream.lib.GetPortForward(r)
	}
	return nil, unsupported(t.rec.Handler, "PortForward")
}
