package native

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/proc"
	"corral.io/corral/runtimes"
)

func TestPlanMounts(t *testing.T) {
	d := t.TempDir()
	vol, file, existing := filepath.Join(d, "vol"), filepath.Join(d, "file"), filepath.Join(d, "existing")
	os.Mkdir(vol, 0o755)
	os.Mkdir(existing, 0o755)
	os.WriteFile(file, nil, 0o644)
	missing := filepath.Join(d, "missing", "x")
	m := func(hp, cp string, mod ...func(*runtimeapi.Mount)) *runtimeapi.Mount {
		x := &runtimeapi.Mount{HostPath: hp, ContainerPath: cp}
		for _, f := range mod {
			f(x)
		}
		return x
	}
	ro := func(x *runtimeapi.Mount) { x.Readonly = true }
	tests := []struct {
		name     string
		in       []*runtimeapi.Mount
		want     []proc.Mount
		warnings int
		bad      string
	}{
		{"dir on dir, read-only, host-to-container", []*runtimeapi.Mount{m(vol, existing, ro, func(x *runtimeapi.Mount) {
			x.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		})}, []proc.Mount{{Source: vol, Target: existing, ReadOnly: true, Propagation: "rslave"}}, 0, ""},
		{"file on file", []*runtimeapi.Mount{m(file, "/etc/hosts")}, []proc.Mount{{Source: file, Target: "/etc/hosts", Propagation: "private"}}, 0, ""},
		{"missing on the host: skipped", []*runtimeapi.Mount{m(file, missing)}, nil, 1, ""},
		{"missing inside an earlier volume: created there", []*runtimeapi.Mount{m(vol, existing), m(file, existing+"/sub/f")},
			[]proc.Mount{{Source: vol, Target: existing, Propagation: "private"}, {Source: file, Target: existing + "/sub/f", Propagation: "private", Create: "file"}}, 0, ""},
		{"missing inside a read-only volume: skipped", []*runtimeapi.Mount{m(vol, existing, ro), m(vol, existing+"/sub")},
			[]proc.Mount{{Source: vol, Target: existing, ReadOnly: true, Propagation: "private"}}, 1, ""},
		{"file on a directory", []*runtimeapi.Mount{m(file, existing)}, nil, 0, "cannot mount a file on a dir"},
		{"relative", []*runtimeapi.Mount{m(vol, "rel")}, nil, 0, "absolute"},
		{"climbing", []*runtimeapi.Mount{m(d+"/../../etc", existing)}, nil, 0, "clean"},
		{"root", []*runtimeapi.Mount{m(vol, "/")}, nil, 0, "root"},
		{"missing host path", []*runtimeapi.Mount{m(missing, existing)}, nil, 0, "host path"},
		{"bidirectional", []*runtimeapi.Mount{m(vol, existing, func(x *runtimeapi.Mount) {
			x.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
		})}, nil, 0, "cannot reach the host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := planMounts(tc.in)
			if tc.bad != "" {
				if !errors.Is(err, runtimes.ErrInvalid) || !strings.Contains(err.Error(), tc.bad) {
					t.Errorf("error = %v, want ErrInvalid containing %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
			if len(warnings) != tc.warnings {
				t.Errorf("warnings = %q, want %d", warnings, tc.warnings)
			}
		})
	}
}

func TestCapabilitySets(t *testing.T) {
	sc := func(add, drop, amb []string) *runtimeapi.LinuxContainerSecurityContext {
		return &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddCapabilities: add, DropCapabilities: drop, AddAmbientCapabilities: amb}}
	}
	tests := []struct {
		name     string
		sc       *runtimeapi.LinuxContainerSecurityContext
		set, amb uint64
		bad      bool
	}{
		{"none given: containerd's default", nil, defaultCaps, 0, false},
		{"privileged", &runtimeapi.LinuxContainerSecurityContext{Privileged: true}, allCaps, 0, false},
		{"add and drop, with and without CAP_", sc([]string{"NET_ADMIN", "cap_sys_time"}, []string{"CAP_KILL"}, nil),
			(defaultCaps | capMask("NET_ADMIN", "SYS_TIME")) &^ capMask("KILL"), 0, false},
		{"drop ALL then add", sc([]string{"CHOWN"}, []string{"ALL"}, nil), capMask("CHOWN"), 0, false},
		{"add ALL then drop", sc([]string{"ALL"}, []string{"SYS_ADMIN"}, nil), allCaps &^ capMask("SYS_ADMIN"), 0, false},
		{"ambient", sc(nil, []string{"ALL"}, []string{"NET_BIND_SERVICE"}), capMask("NET_BIND_SERVICE"), capMask("NET_BIND_SERVICE"), false},
		{"unknown", sc([]string{"TELEPORT"}, nil, nil), 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := capabilities(tc.sc)
			if tc.bad {
				if !errors.Is(err, runtimes.ErrInvalid) {
					t.Errorf("error = %v, want ErrInvalid", err)
				}
				return
			}
			want := &proc.Caps{Bounding: tc.set, Effective: tc.set, Permitted: tc.set, Ambient: tc.amb}
			if err != nil || *c != *want {
				t.Errorf("capabilities = %+v, %v; want %+v", c, err, want)
			}
		})
	}
}
