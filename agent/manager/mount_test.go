package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/unit"
)

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		opts  string
		flags uintptr
		prop  []uintptr
		data  []string
		bind  bool
	}{
		{opts: "defaults"},
		{opts: "", flags: 0},
		{opts: "ro,nosuid,nodev,noexec", flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{opts: "ro,rw", flags: 0},
		{opts: "errors=remount-ro,noatime,nofail,x-systemd.automount,_netdev,comment=x",
			flags: unix.MS_NOATIME, data: []string{"errors=remount-ro"}},
		{opts: "size=64m,mode=1777,nosuid", flags: unix.MS_NOSUID, data: []string{"size=64m", "mode=1777"}},
		{opts: "rbind,rslave", flags: unix.MS_BIND | unix.MS_REC, prop: []uintptr{unix.MS_SLAVE | unix.MS_REC}, bind: true},
		{opts: "bind,ro", flags: unix.MS_BIND | unix.MS_RDONLY, bind: true},
		{opts: "remount,relatime", flags: unix.MS_REMOUNT | unix.MS_RELATIME},
	}
	for _, tt := range tests {
		got := parseMountOptions(tt.opts)
		if got.flags != tt.flags || !slices.Equal(got.propagation, tt.prop) || !slices.Equal(got.data, tt.data) || got.bind != tt.bind {
			t.Errorf("parseMountOptions(%q) = %+v, want flags %#x prop %v data %v bind %v", tt.opts, got, tt.flags, tt.prop, tt.data, tt.bind)
		}
	}
}

// mountRoot returns a temp dir that is itself a tmpfs mount point (so the
// "/" unit has a root to remount), unmounted at the end.
func mountRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := unix.Mount("corral-test", root, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		unix.Unmount(root, unix.MNT_DETACH)
	})
	return root
}

func hasOpt(info mountInfo, opt string) bool {
	return slices.Contains(strings.Split(info.options, ","), opt)
}

func TestMountUnitRuntime(t *testing.T) {
	ctx := context.Background()
	root := mountRoot(t)

	// A tmpfs like fstab's /tmp line: flags applied, data passed, mount
	// point created, unmounted on stop.
	tmp := &unit.Mount{What: "tmpfs", Where: "/var/tmp/x", Type: "tmpfs", Options: "nosuid,nodev,size=1m,mode=1777,nofail", DirectoryMode: 0o755, TimeoutSec: time.Second}
	if _, err := mountUnit(ctx, root, tmp); err != nil {
		t.Fatal(err)
	}
	where := filepath.Join(root, "var/tmp/x")
	info, ok, err := mountedAt(where)
	if err != nil || !ok || info.fstype != "tmpfs" || !hasOpt(info, "nosuid") || !hasOpt(info, "nodev") {
		t.Fatalf("after start: %+v %v %v", info, ok, err)
	}
	if st, err := os.Stat(where); err != nil || st.Mode()&os.ModeSticky == 0 {
		t.Errorf("mode=1777 not applied: %v %v", st.Mode(), err)
	}
	// Starting again is a no-op: it is already mounted.
	if msg, err := mountUnit(ctx, root, tmp); err != nil || !strings.Contains(msg, "already mounted") {
		t.Errorf("second start: %q %v", msg, err)
	}
	if err := unmountUnit(ctx, root, tmp); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := mountedAt(where); ok {
		t.Error("still mounted after stop")
	}
	if err := unmountUnit(ctx, root, tmp); err != nil {
		t.Errorf("stopping an unmounted unit: %v", err)
	}

	// A read-only bind mount: the flags need the extra remount.
	os.MkdirAll(filepath.Join(root, "src"), 0o755)
	bind := &unit.Mount{What: "/src", Where: "/dst", Options: "bind,ro", DirectoryMode: 0o755, TimeoutSec: time.Second}
	if _, err := mountUnit(ctx, root, bind); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(filepath.Join(root, "dst/f"), nil, 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("write into the ro bind mount: %v, want EROFS", err)
	}
	if err := unmountUnit(ctx, root, bind); err != nil {
		t.Fatal(err)
	}

	// The root is remounted with fstab's options, and never unmounted.
	rootUnit := &unit.Mount{What: "/dev/vda", Where: "/", Type: "ext4", Options: "ro", DirectoryMode: 0o755}
	if msg, err := mountUnit(ctx, root, rootUnit); err != nil || !strings.Contains(msg, "Remounted") {
		t.Fatalf("root: %q %v", msg, err)
	}
	if info, _, _ := mountedAt(root); !hasOpt(info, "ro") {
		t.Errorf("root not remounted ro: %+v", info)
	}
	rootUnit.Options = "defaults"
	if _, err := mountUnit(ctx, root, rootUnit); err != nil {
		t.Fatal(err)
	}
	if info, _, _ := mountedAt(root); !hasOpt(info, "rw") {
		t.Errorf("root not remounted rw: %+v", info)
	}
	if err := unmountUnit(ctx, root, rootUnit); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := mountedAt(root); !ok {
		t.Error("stopping -.mount unmounted the root")
	}

	// A device that never appears fails after the unit's timeout, naming it.
	missing := &unit.Mount{What: "/dev/corral-test-missing", Where: "/m", Type: "ext4", TimeoutSec: 100 * time.Millisecond}
	if _, err := mountUnit(ctx, root, missing); err == nil || !strings.Contains(err.Error(), "/dev/corral-test-missing") {
		t.Errorf("missing device: %v", err)
	}
	// A bad filesystem type is an error naming the mount point.
	bad := &unit.Mount{What: "none", Where: "/b", Type: "corral-no-such-fs", DirectoryMode: 0o755}
	if _, err := mountUnit(ctx, root, bad); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "b")) {
		t.Errorf("bad type: %v", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/x`: "/x", `/t\011\134`: "/t\t\\", `\04`: `\04`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
