package qemu

import (
	"context"
	"strings"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageName is the reserved image VM pods can always run: the busybox root
// that `make vm-assets` builds (busybox.ext4), attached to every VM. Like
// the native handler's host image it is always present. Every other image
// is an OCI image pulled through containerd's CRI image service
// (Config.Containerd) and unpacked for the guest (unpack.go).
const (
	ImageName = "localhost/corral/busybox:latest"
	ImageID   = "sha256:e20f6fa6abd3357ffc3fa0f520bd3231e67f6c5f8cbf16ccd09165761a8c4dc9" // sha256 of ImageName
)

// ImageService is the part of a CRI image service VM pods use;
// *remote.Backend satisfies it.
type ImageService interface {
	ListImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
	ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error)
	PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error)
	RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

func isImage(ref string) bool {
	return ref == ImageName || ref == ImageID || ref == strings.TrimSuffix(ImageName, ":latest")
}

func (b *Backend) image() *runtimeapi.Image {
	return &runtimeapi.Image{Id: ImageID, RepoTags: []string{ImageName}, RepoDigests: []string{}, Spec: &runtimeapi.ImageSpec{Image: ImageName}, Size: 16 << 20, Pinned: true}
}

// remoteSpec drops the runtime handler: containerd does not know "vm".
func remoteSpec(spec *runtimeapi.ImageSpec) *runtimeapi.ImageSpec {
	s := proto.Clone(spec).(*runtimeapi.ImageSpec)
	s.RuntimeHandler = ""
	return s
}

// ListImages lists the reserved image and containerd's.
func (b *Backend) ListImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	var out []*runtimeapi.Image
	if s := f.GetImage().GetImage(); s == "" || isImage(s) {
		out = append(out, b.image())
	}
	if b.images == nil || (f.GetImage() != nil && isImage(f.GetImage().GetImage())) {
		return out, nil
	}
	if f.GetImage() != nil {
		f = &runtimeapi.ImageFilter{Image: remoteSpec(f.GetImage())}
	}
	more, err := b.images.ListImages(ctx, f)
	return append(out, more...), err
}

// ImageStatus reports the reserved image, or asks containerd.
func (b *Backend) ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	if isImage(spec.GetImage()) {
		return &runtimeapi.ImageStatusResponse{Image: b.image()}, nil
	}
	if b.images == nil {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return b.images.ImageStatus(ctx, remoteSpec(spec), verbose)
}

// PullImage pulls through containerd; the reserved image is always
// present.
func (b *Backend) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	if isImage(spec.GetImage()) {
		return ImageID, nil
	}
	if b.images == nil {
		return "", invalid("image %q: this VM handler has no containerd to pull through (only %s)", spec.GetImage(), ImageName)
	}
	return b.images.PullImage(ctx, remoteSpec(spec), auth, podCfg)
}

// RemoveImage removes a containerd image; the reserved image cannot be
// removed, which is a no-op as CRI asks of a missing image. The cached
// ext4 of the image stays until its digest is pruned (not yet).
func (b *Backend) RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error {
	if isImage(spec.GetImage()) || b.images == nil {
		return nil
	}
	return b.images.RemoveImage(ctx, remoteSpec(spec))
}

// ImageFsInfo is containerd's: the reserved image lives with the VM
// assets, outside any image filesystem kubelet should garbage-collect.
func (b *Backend) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	if b.images == nil {
		return &runtimeapi.ImageFsInfoResponse{}, nil
	}
	return b.images.ImageFsInfo(ctx)
}
