package cri

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestImages(t *testing.T) {
	e := newTestService(t)
	l, err := e.img.ListImages(ctx(t), &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range l.Images {
		ids = append(ids, i.Id)
	}
	slices.Sort(ids)
	if want := []string{e.native.Image(), e.vm.Image()}; !slices.Equal(ids, want) {
		t.Fatalf("images = %q, want %q", ids, want)
	}
	e.vm.SetDown("down")
	if l, err := e.img.ListImages(ctx(t), &runtimeapi.ListImagesRequest{}); err != nil || len(l.Images) != 1 {
		t.Fatalf("images with vm down = %v, %v", l, err)
	}
	e.vm.SetDown("")

	for _, tc := range []struct {
		name string
		req  *runtimeapi.PullImageRequest
		ref  string
		code codes.Code
	}{
		{"default", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.native.Image()}}, e.native.Image(), codes.OK},
		{"spec handler", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.vm.Image(), RuntimeHandler: "vm"}}, e.vm.Image(), codes.OK},
		{"sandbox annotation", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.vm.Image()},
			SandboxConfig: podConfig("a", map[string]string{AnnotationRuntime: "vm"})}, e.vm.Image(), codes.OK},
		{"wrong backend", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: e.vm.Image()}}, "", codes.NotFound},
		{"unknown handler", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "x", RuntimeHandler: "nope"}}, "", codes.InvalidArgument},
		{"no image service", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "x", RuntimeHandler: "basic"}}, "", codes.Unimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.img.PullImage(ctx(t), tc.req)
			if tc.code != codes.OK {
				wantCode(t, err, tc.code)
				return
			}
			if err != nil || r.ImageRef != tc.ref {
				t.Fatalf("PullImage = %v, %v; want %s", r, err, tc.ref)
			}
		})
	}

	// ImageStatus finds an image on a non-default backend; a missing one is
	// an empty answer, not an error.
	st, err := e.img.ImageStatus(ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: e.vm.Image()}})
	if err != nil || st.Image.GetId() != e.vm.Image() {
		t.Fatalf("ImageStatus = %v, %v", st, err)
	}
	st, err = e.img.ImageStatus(ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "missing"}})
	if err != nil || st.Image != nil {
		t.Fatalf("ImageStatus of a missing image = %v, %v", st, err)
	}
	if _, err := e.img.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "missing"}}); err != nil {
		t.Fatalf("RemoveImage of a missing image: %v", err)
	}
	_, err = e.img.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: e.native.Image()}})
	wantCode(t, err, codes.FailedPrecondition, "pinned")
	fs, err := e.img.ImageFsInfo(ctx(t), &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 2 {
		t.Fatalf("ImageFsInfo = %v, %v", fs, err)
	}
}
