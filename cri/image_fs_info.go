package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// ImageFsInfo merges the filesystems of every backend's image service.
func (s *Server) ImageFsInfo(ctx context.Context, req *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	resp := &runtimeapi.ImageFsInfoResponse{}
	s.eachBackend(ctx, "image fs info", s.handlers, func(h string, b runtimes.Backend) error {
		im, ok := b.(runtimes.Images)
		if !ok {
			return nil
		}
		r, err := im.ImageFsInfo(ctx)
		resp.ImageFilesystems = append(resp.ImageFilesystems, r.GetImageFilesystems()...)
		resp.ContainerFilesystems = append(resp.ContainerFilesystems, r.GetContainerFilesystems()...)
		return err
	})
	return resp, nil
}
