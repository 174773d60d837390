package manager

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/unit"
)

func TestDevicePresent(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev/disk/by-label"), 0o755)
	os.WriteFile(filepath.Join(root, "dev/ttyS0"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "dev/disk/by-label/root"), nil, 0o644)
	os.MkdirAll(filepath.Join(root, "sys/class/net/eth0"), 0o755)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"dev-ttyS0.device", true},
		{"dev-ttyS1.device", false},
		{`dev-disk-by\x2dlabel-root.device`, true},
		{"sys-subsystem-net-devices-eth0.device", true},
		{"sys-subsystem-net-devices-eth1.device", false},
		{"run-foo.device", false}, // not under /dev or /sys
	} {
		if err := devicepresent(root, tc.name); (err == nil) != tc.ok {
			t.Errorf("devicepresent(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSyslogText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<13>Nov 28 06:57:09 cron[412]: (CRON) INFO (pidfile fd = 3)", "cron[412]: (CRON) INFO (pidfile fd = 3)"},
		{"<86>Nov  8 06:57:09 sshd[9]: Accepted publickey", "sshd[9]: Accepted publickey"},
		{"<30>nginx: started", "nginx: started"},
		{"plain text", "plain text"},
		{"<13>", ""},
	} {
		if got := syslogText(tc.in); got != tc.want {
			t.Errorf("syslogText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// bootRoot writes a miniature Debian: systemd's units that Corral masks, a
// serial getty bound to its device, an fstab with a tmpfs and tmpfiles.d.
func bootRoot(t *testing.T) string {
	root := t.TempDir()
	w := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lib := "lib/systemd/system/"
	w(lib+"local-fs.target", "[Unit]\nDescription=Local File Systems\nDefaultDependencies=no\n")
	w(lib+"getty.target", "[Unit]\nDescription=Login Prompts\n")
	w(lib+"multi-user.target", "[Unit]\nDescription=Multi-User System\nWants=getty.target systemd-logind.service\nAfter=local-fs.target\n")
	w(lib+"serial-getty@.service", "[Unit]\nBindsTo=dev-%i.device\nAfter=dev-%i.device\nDefaultDependencies=no\n"+
		"[Service]\nExecStart=/bin/sleep 1000\n")
	// A drop-in keeps sleep even if the template above grows Debian's
	// agetty, so that no test touches the host's ttyS0.
	w("etc/systemd/system/serial-getty@.service.d/zz-test.conf", "[Service]\nExecStart=\nExecStart=/bin/sleep 1000\n")
	w(lib+"systemd-logind.service", "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/false\n")
	w("etc/fstab", "# test\ntmpfs /mnt tmpfs size=1m,mode=0755 0 0\n")
	w("etc/machine-id", "")
	w("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
	w("etc/group", "root:x:0:\n")
	w("etc/tmpfiles.d/test.conf", "d /run/made 0750 root root -\nD /scratch 0755 root root -\nf! /run/bootonly 0644 root root - x\n")
	w("scratch/old", "from the last boot")
	w("dev/ttyS0", "")
	return root
}

func newBoot(t *testing.T, root, target string) (*Manager, func()) {
	t.Helper()
	base := fmt.Sprintf("corral-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	m, err := New(Config{Root: root, CgroupBase: base, SystemUnits: true, Boot: true,
		Cmdline: "root=/dev/vda console=tty0 console=ttyS0,115200", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, target) }()
	stop := func() {
		cancel()
		<-done
		m.cg.Remove("")
	}
	return m, stop
}

func TestBootSteps(t *testing.T) {
	root := bootRoot(t)
	m, stop := newBoot(t, root, "multi-user.target")
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	mnt := filepath.Join(root, "mnt")
	t.Cleanup(func() { unmountUnit(context.Background(), root, &unit.Mount{Where: "/mnt"}) })

	active := func(name string) func() bool {
		return func() bool { e := m.lookup(name); return e != nil && e.activeState() == "active" }
	}
	waitFor(t, "multi-user.target", active("multi-user.target"))
	waitFor(t, "serial-getty@ttyS0.service", active("serial-getty@ttyS0.service"))
	pid := m.get("serial-getty@ttyS0.service").svc.Status().MainPID
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "sleep" {
		t.Errorf("serial-getty@ttyS0.service runs %q (pid %d), want the test's sleep", comm, pid)
	}
	if st := m.get("dev-ttyS0.device").activeState(); st != "active" {
		t.Errorf("dev-ttyS0.device is %s", st)
	}
	if u := m.get("systemd-logind.service").unit(); u.LoadState != unit.LoadMasked {
		t.Errorf("systemd-logind.service load state %s, want masked", u.LoadState)
	}
	if st := m.get("systemd-logind.service").activeState(); st == "active" {
		t.Error("masked systemd-logind.service is active")
	}
	if st := m.get("mnt.mount").activeState(); st != "active" {
		t.Errorf("mnt.mount is %s", st)
	}
	if info, ok, _ := mountedAt(mnt); !ok || info.fstype != "tmpfs" {
		t.Errorf("%s: mounted=%v %+v, want tmpfs", mnt, ok, info)
	}

	// tmpfiles: created, boot-only lines run, D emptied at boot.
	for _, p := range []string{"run/made", "run/bootonly", "scratch", bootMarker, "var/lib/systemd/random-seed"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("after boot: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "scratch/old")); !os.IsNotExist(err) {
		t.Errorf("scratch/old survived D at boot: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(strings.TrimSpace(string(b))) != 32 {
		t.Errorf("machine-id %q", b)
	}

	// The skip is said where `corralctl status` shows it.
	if !logHas(t, m, "systemd-logind.service", "core", "skipped: systemd-logind.service: ") {
		t.Error("no skip message in systemd-logind.service's log")
	}

	// /dev/log goes to the log store under the sender's unit (or comm).
	c, err := net.Dial("unixgram", filepath.Join(root, "dev/log"))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("<13>Nov 28 06:57:09 boottest[1]: hello from syslog"))
	c.Close()
	sender := syslogUnit(os.Getpid())
	waitFor(t, "syslog message in the store", func() bool {
		return logHas(t, m, sender, string(syslogStream), "boottest[1]: hello from syslog")
	})

	seed, _ := os.ReadFile(filepath.Join(root, "var/lib/systemd/random-seed"))
	stop()
	stopped = true
	if _, ok, _ := mountedAt(mnt); ok {
		t.Errorf("%s still mounted after shutdown", mnt)
	}
	if seed2, _ := os.ReadFile(filepath.Join(root, "var/lib/systemd/random-seed")); len(seed2) == 0 || string(seed2) == string(seed) {
		t.Error("random seed not saved at shutdown")
	}

	// A core restarted in the same boot (marker present) must not apply
	// tmpfiles again: D would empty a directory services already use.
	os.WriteFile(filepath.Join(root, "scratch/in-use"), nil, 0o644)
	m2, stop2 := newBoot(t, root, "")
	<-m2.ready
	waitFor(t, "second core's /dev/log", func() bool {
		c, err := net.Dial("unixgram", filepath.Join(root, "dev/log"))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	stop2()
	if _, err := os.Stat(filepath.Join(root, "scratch/in-use")); err != nil {
		t.Errorf("restarted core re-ran tmpfiles: %v", err)
	}
}

func logHas(t *testing.T, m *Manager, name, stream, text string) bool {
	found := false
	m.logs.Read(context.Background(), name, logs.Query{N: 100}, func(e logs.Entry) error {
		if string(e.Stream) == stream && strings.Contains(e.Msg, text) {
			found = true
		}
		return nil
	})
	return found
}

// TestBootBareRoot: a root without fstab, systemd units or tmpfiles.d (a
// VM guest's initramfs) still gets a machine ID, /dev/log and the marker.
func TestBootBareRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	_, stop := newBoot(t, root, "")
	waitFor(t, "boot marker", func() bool {
		_, err := os.Stat(filepath.Join(root, bootMarker))
		return err == nil
	})
	stop()
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(strings.TrimSpace(string(b))) != 32 {
		t.Errorf("machine-id %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(root, "dev/log")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("dev/log: %v %v", fi, err)
	}
	// The getty generator works from the command line alone; no masks
	// (nothing to mask), no fstab units.
	ents, _ := os.ReadDir(filepath.Join(root, "run/corral/generator"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"dev-ttyS0.device", "getty.target.wants"}; !slices.Equal(names, want) {
		t.Errorf("generator dir holds %q, want %q", names, want)
	}
}
