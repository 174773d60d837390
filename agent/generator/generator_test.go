package generator

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"corral.io/corral/agent/unit"
)

func TestConsoles(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []string
	}{
		{"root=/dev/vda console=ttyS0 quiet", []string{"ttyS0"}},
		{"console=tty0 console=ttyS1,115200n8", []string{"ttyS1"}},
		{"console=hvc0 console=ttyS0 console=hvc0", []string{"hvc0", "ttyS0"}},
		{"console=/dev/ttyAMA0", []string{"ttyAMA0"}},
		{"console=tty1 console=ttyS console=null", nil},
		{"xconsole=ttyS0 console=ttyS0/../x", nil},
		{"", nil},
	} {
		if got := Consoles(tc.cmdline); !slices.Equal(got, tc.want) {
			t.Errorf("Consoles(%q) = %q, want %q", tc.cmdline, got, tc.want)
		}
	}
}

func TestGetty(t *testing.T) {
	dir := t.TempDir()
	units, err := Getty(dir, "console=tty0 console=ttyS0,115200 console=hvc0")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"serial-getty@ttyS0.service", "serial-getty@hvc0.service"}
	if !slices.Equal(units, want) {
		t.Fatalf("units = %q, want %q", units, want)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "getty.target.wants"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("getty.target.wants = %q, want %q", names, want)
	}
	// Debian's template runs unmodified: no drop-in, the line comes from
	// StandardInput=tty + TTYPath= (the spawner opens it for agetty).
	os.WriteFile(filepath.Join(dir, "serial-getty@.service"), []byte("[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --keep-baud 115200,57600,38400,9600 - $TERM\nType=idle\nStandardInput=tty\nTTYPath=/dev/%I\n"), 0o644)
	u := (&unit.Loader{Dirs: []string{dir}}).Load("serial-getty@ttyS0.service")
	if u.Service == nil || len(u.Service.ExecStart) != 1 {
		t.Fatalf("serial-getty@ttyS0.service: %s %s, ExecStart %+v", u.LoadState, u.LoadError, u.Service)
	}
	if got := u.Service.ExecStart[0].Args; !slices.Equal(got[len(got)-2:], []string{"-", "$TERM"}) || u.Service.TTYPath != "/dev/ttyS0" {
		t.Errorf("ExecStart argv = %q, TTYPath %q: want Debian's own (- $TERM on /dev/ttyS0)", got, u.Service.TTYPath)
	}
	// Running again (a second boot on a persistent dir) is not an error.
	if _, err := Getty(dir, "console=ttyS0"); err != nil {
		t.Errorf("second run: %v", err)
	}
}

func TestMask(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		wantErr bool
	}{
		{"systemd-logind.service", false},
		{"systemd-logind.service", false}, // again: replaced, not an error
		{"systemd-udevd-kernel.socket", false},
		{"../escape.service", true},
		{"nodot", true},
	} {
		err := Mask(dir, tc.name)
		if (err != nil) != tc.wantErr {
			t.Errorf("Mask(%q) err = %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if err == nil {
			if target, err := os.Readlink(filepath.Join(dir, tc.name)); err != nil || target != "/dev/null" {
				t.Errorf("Mask(%q): link %q, %v", tc.name, target, err)
			}
		}
	}
}

func TestDevice(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"dev-ttyS0.device", "/dev/ttyS0"},
		{`dev-disk-by\x2dlabel-root.device`, "/dev/disk/by-label/root"},
		{"sys-subsystem-net-devices-eth0.device", "/sys/class/net/eth0"},
		{"sys-devices-virtual-tty-ttyS0.device", "/sys/devices/virtual/tty/ttyS0"},
	} {
		if got := DevicePath(tc.name); got != tc.path {
			t.Errorf("DevicePath(%q) = %q, want %q", tc.name, got, tc.path)
		}
	}
	dir := t.TempDir()
	if err := Device(dir, "dev-vda.device"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "dev-vda.device"))
	if err != nil || !strings.Contains(string(b), "\n[Unit]\nDescription=/dev/vda\n") {
		t.Errorf("dev-vda.device = %q, %v", b, err)
	}
	if err := Device(dir, "vda.service"); err == nil {
		t.Error("Device accepted a service name")
	}
}
