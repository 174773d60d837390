package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// PullImage routes like a pod: ImageSpec.runtime_handler, else the sandbox
// config's corral.io/runtime annotation, else the default handler.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	spec := req.GetImage()
	if spec.GetImage() == "" {
		return nil, invalid("image.image is required")
	}
	h, b, err := s.route(spec.GetRuntimeHandler(), req.GetSandboxConfig().GetAnnotations())
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", spec.GetImage(), err)
	}
	im, ok := b.(runtimes.Images)
	if !ok {
		return nil, unsupported(h, "PullImage")
	}
	ref, err := im.PullImage(ctx, spec, req.GetAuth(), req.GetSandboxConfig())
	if err != nil {
		return nil, fmt.Errorf("pull %s on handler %q: %w", spec.GetImage(), h, err)
	}
	return &runtimeapi.PullImageResponse{ImageRef: ref}, nil
}
