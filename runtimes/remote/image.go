package remote

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// remoteSpec translates the spec's runtime_handler like a pod's.
func (b *Backend) remoteSpec(ctx context.Context, spec *runtimeapi.ImageSpec) *runtimeapi.ImageSpec {
	if spec.GetRuntimeHandler() == "" {
		return spec
	}
	s := proto.Clone(spec).(*runtimeapi.ImageSpec)
	s.RuntimeHandler = b.remoteHandler(ctx, s.RuntimeHandler)
	return s
}

func (b *Backend) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if filter.GetImage() != nil {
		filter = &runtimeapi.ImageFilter{Image: b.remoteSpec(ctx, filter.GetImage())}
	}
	resp, err := b.img.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: filter})
	if err != nil {
		return nil, b.wrap("list images", "", err)
	}
	return resp.GetImages(), nil
}

func (b *Backend) ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	resp, err := b.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: b.remoteSpec(ctx, spec), Verbose: verbose})
	if err != nil {
		return nil, b.wrap("image status", spec.GetImage(), err)
	}
	return resp, nil
}

func (b *Backend) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := b.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: b.remoteSpec(ctx, spec), Auth: auth, SandboxConfig: podCfg})
	if err != nil {
		return "", b.wrap("pull image", spec.GetImage(), err)
	}
	return resp.GetImageRef(), nil
}

func (b *Backend) RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error {
	_, err := b.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: b.remoteSpec(ctx, spec)})
	return b.wrap("remove image", spec.GetImage(), err)
}

func (b *Backend) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	resp, err := b.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		return nil, b.wrap("image fs info", "", err)
	}
	return resp, nil
}
