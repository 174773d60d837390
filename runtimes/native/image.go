package native

import (
	"context"
	"fmt"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// HostImage is the only image native pods run: the host's root filesystem.
const HostImage = "localhost/corral/host:latest"

// HostImageID is its stable ID (sha256 of the name), so that kubelet and
// crictl see the same ID across restarts.
const HostImageID = "sha256:bd70e3db0627ddb2178f2eec1fef4f209a31e6dce4a314fe3d74089444310778"

// hostImageNames are the spellings that mean the host image.
func isHostImage(ref string) bool {
	switch ref {
	case HostImage, "localhost/corral/host", HostImageID, strings.TrimPrefix(HostImageID, "sha256:"):
		return true
	}
	return false
}

func checkImage(ref string) error {
	if !isHostImage(ref) {
		return fmt.Errorf("%w: image %q: only the reserved image %s (the host root filesystem) runs on the native runtime", runtimes.ErrInvalid, ref, HostImage)
	}
	return nil
}

func hostImage() *runtimeapi.Image {
	return &runtimeapi.Image{
		Id:          HostImageID,
		RepoTags:    []string{HostImage},
		RepoDigests: []string{},
		Spec:        &runtimeapi.ImageSpec{Image: HostImage},
		// Kubelet refuses an image whose size is 0 ("Id or size of image
		// is not set"); the host image takes no space of its own, so it
		// claims the least it can.
		Size:   1,
		Pinned: true,
	}
}

// ListImages lists the host image, the only one there is.
func (b *Backend) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if f := filter.GetImage().GetImage(); f != "" && !isHostImage(f) {
		return nil, nil
	}
	return []*runtimeapi.Image{hostImage()}, nil
}

// ImageStatus reports the host image; any other is absent (nil image, as
// the CRI wants for a missing one).
func (b *Backend) ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	if !isHostImage(spec.GetImage()) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: hostImage()}, nil
}

// PullImage succeeds at once for the host image and refuses any other.
func (b *Backend) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	if err := checkImage(spec.GetImage()); err != nil {
		return "", err
	}
	return HostImageID, nil
}

// RemoveImage refuses to remove the host image; removing any other (which
// is absent) is a no-op, as the CRI wants.
func (b *Backend) RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error {
	if isHostImage(spec.GetImage()) {
		return fmt.Errorf("%w: image %s is the host root filesystem and cannot be removed", runtimes.ErrPrecondition, HostImage)
	}
	return nil
}

// ImageFsInfo: the host image takes no space of its own.
func (b *Backend) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{}, nil
}
