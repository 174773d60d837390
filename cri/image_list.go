package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ListImages merges the images of every backend with an image service;
// an image two backends share is listed once.
func (s *Server) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	resp := &runtimeapi.ListImagesResponse{}
	seen := map[string]bool{}
	s.eachBackend(ctx, "list images", s.handlers, func(h string, b runtimes.Backend) error {
		im, ok := b.(runtimes.Images)
		if !ok {
			return nil
		}
		items, err := im.ListImages(ctx, req.GetFilter())
		for _, i := range items {
			if !seen[i.GetId()] {
				seen[i.GetId()] = true
				resp.Images = append(resp.Images, i)
			}
		}
		return err
	})
	return resp, nil
}

// imageBackends lists the handlers to ask about an image: the one named
// by the spec, or the default first and then every other.
func (s *Server) imageBackends(spec *runtimeapi.ImageSpec) ([]string, error) {
	if h := spec.GetRuntimeHandler(); h != "" {
		if _, _, err := s.route(h, nil); err != nil {
			return nil, err
		}
		return []string{h}, nil
	}
	hs := []string{s.def}
	for _, h := range s.handlers {
		if h != s.def {
			hs = append(hs, h)
		}
	}
	return hs, nil
}
