package cri

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// RemoveImage removes the image from the spec's handler, or from every
// backend that has an image service. Like Stop/Remove, a missing image is
// not an error.
func (s *Server) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
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
		if err := im.RemoveImage(ctx, spec); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
			return nil, fmt.Errorf("remove image %s on handler %q: %w", spec.GetImage(), h, err)
		}
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}
