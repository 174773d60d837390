package qemu

import (
	"context"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageName is the one image VM pods run in this slice: the busybox root
// that `make vm-assets` builds (busybox.ext4). Like the native handler's
// host image, it is always present; any other name is InvalidArgument
// until OCI images are unpacked for the guest (docs/VM.md).
const (
	ImageName = "localhost/corral/busybox:latest"
	ImageID   = "sha256:e20f6fa6abd3357ffc3fa0f520bd3231e67f6c5f8cbf16ccd09165761a8c4dc9" // sha256 of ImageName
)

func isImage(ref string) bool {
	return ref == ImageName || ref == ImageID || ref == strings.TrimSuffix(ImageName, ":latest")
}

func (b *Backend) image() *runtimeapi.Image {
	return &runtimeapi.Image{Id: ImageID, RepoTags: []string{ImageName}, RepoDigests: []string{}, Spec: &runtimeapi.ImageSpec{Image: ImageName}, Size: 16 << 20, Pinned: true}
}

// ListImages lists the reserved image.
func (b *Backend) ListImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if s := f.GetImage().GetImage(); s != "" && !isImage(s) {
		return nil, nil
	}
	return []*runtimeapi.Image{b.image()}, nil
}

// ImageStatus reports the reserved image; other names are absent.
func (b *Backend) ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	if !isImage(spec.GetImage()) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: b.image()}, nil
}

// PullImage accepts only the reserved image, which is always present.
func (b *Backend) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	if !isImage(spec.GetImage()) {
		return "", invalid("image %q: VM pods run only %s for now (docs/VM.md)", spec.GetImage(), ImageName)
	}
	return ImageID, nil
}

// RemoveImage: the reserved image cannot be removed; removing it is a
// no-op, as CRI asks of a missing image.
func (b *Backend) RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error { return nil }

// ImageFsInfo: the image lives with the VM assets, outside any image
// filesystem kubelet should garbage-collect.
func (b *Backend) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}
