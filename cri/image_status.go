package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ImageStatus answers from the spec's handler, or the first backend that
// has the image; a missing image is an empty response, as the CRI wants.
func (s *Server) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	spec := req.GetImage()
	if spec.GetImage() == "" {
		return nil, invalid("image.image is required")
	}
	hs, err := s.imageBackends(spec)
	if err != nil {
		return nil, err
	}
	for _, h := range hs {
		im, ok := s.backends[h].(runtimes.Images)
		if !ok {
			continue
		}
		resp, err := im.ImageStatus(ctx, spec, req.GetVerbose())
		if err != nil {
			if len(hs) == 1 {
				return nil, fmt.Errorf("image %s on handler %q: %w", spec.GetImage(), h, err)
			}
			s.log.Warn("cri: image status skipped", "handler", h, "image", spec.GetImage(), "err", err)
			continue
		}
		if resp.GetImage() != nil {
			return resp, nil
		}
	}
	return &runtimeapi.ImageStatusResponse{}, nil
}
