package native

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

func TestLogPath(t *testing.T) {
	tests := []struct {
		dir, rel, want string
		bad            bool
	}{
		{"/var/log/pods/p", "c/0.log", "/var/log/pods/p/c/0.log", false},
		{"/var/log/pods/p", "", "", false},
		{"", "c/0.log", "", false},
		{"/var/log/pods/p", "../q/0.log", "", true},
		{"/var/log/pods/p", "/etc/passwd", "", true},
		{"/var/log/pods/p", "c/../../0.log", "", true},
		{"/var/log/pods/p", ".", "", true},
	}
	for _, tc := range tests {
		got, err := logPath(tc.dir, tc.rel)
		if tc.bad {
			if !errors.Is(err, runtimes.ErrInvalid) {
				t.Errorf("logPath(%q, %q) = %q, %v; want ErrInvalid", tc.dir, tc.rel, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("logPath(%q, %q) = %q, %v; want %q", tc.dir, tc.rel, got, err, tc.want)
		}
	}
}

func TestUnitName(t *testing.T) {
	tests := []struct{ id, pod, ctr, want string }{
		{"0123456789abcdef", "web", "nginx", "cri-web-nginx-0123456789ab.service"},
		{"abc", "a b/c", "x:y", "cri-a_b_c-x_y-abc.service"},
		{"abcdef012345", strings.Repeat("p", 100), "c", "cri-" + strings.Repeat("p", 40) + "-c-abcdef012345.service"},
	}
	for _, tc := range tests {
		if got := unitName(tc.id, tc.pod, tc.ctr); got != tc.want {
			t.Errorf("unitName(%q, %q, %q) = %q, want %q", tc.id, tc.pod, tc.ctr, got, tc.want)
		}
	}
}

func TestResources(t *testing.T) {
	r := resources(&runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 64 << 20})
	if r.CPUQuotaPerSec != 500*time.Millisecond || r.CPUQuotaPeriod != 100*time.Millisecond || r.CPUShares != 512 || r.MemoryMax != 64<<20 {
		t.Errorf("resources = %+v", r)
	}
	if r := resources(nil); r.CPUQuotaPerSec != 0 || r.MemoryMax != 0 {
		t.Errorf("resources(nil) = %+v", r)
	}
}

func TestImages(t *testing.T) {
	b := &Backend{}
	ctx := context.Background()
	imgs, err := b.ListImages(ctx, nil)
	if err != nil || len(imgs) != 1 || imgs[0].Id != HostImageID || imgs[0].RepoTags[0] != HostImage {
		t.Fatalf("ListImages = %v, %v", imgs, err)
	}
	if ref, err := b.PullImage(ctx, &runtimeapi.ImageSpec{Image: HostImage}, nil, nil); err != nil || ref != HostImageID {
		t.Errorf("PullImage(host) = %q, %v", ref, err)
	}
	if _, err := b.PullImage(ctx, &runtimeapi.ImageSpec{Image: "docker.io/library/busybox:latest"}, nil, nil); !errors.Is(err, runtimes.ErrInvalid) || !strings.Contains(err.Error(), HostImage) {
		t.Errorf("PullImage(busybox) = %v, want ErrInvalid naming %s", err, HostImage)
	}
	if err := b.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: HostImage}); !errors.Is(err, runtimes.ErrPrecondition) || !strings.Contains(err.Error(), HostImage) {
		t.Errorf("RemoveImage(host) = %v, want ErrPrecondition naming it", err)
	}
	if err := b.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: "busybox"}); err != nil {
		t.Errorf("RemoveImage(absent) = %v", err)
	}
	st, err := b.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: HostImageID}, false)
	if err != nil || st.Image.GetId() != HostImageID {
		t.Errorf("ImageStatus(by ID) = %v, %v", st, err)
	}
	if st, err := b.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, false); err != nil || st.Image != nil {
		t.Errorf("ImageStatus(absent) = %v, %v; want no image", st, err)
	}
	if imgs, _ := b.ListImages(ctx, &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "busybox"}}); len(imgs) != 0 {
		t.Errorf("ListImages(filter busybox) = %v", imgs)
	}
}
