package sysinit

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fakeMounter records calls instead of mounting.
type fakeMounter struct {
	calls   []string
	mounted map[string]bool // targets that are already mount points
	fail    map[string]error
}

func (f *fakeMounter) MkdirAll(path string, mode os.FileMode) error { return nil }

func (f *fakeMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	f.calls = append(f.calls, strings.Join([]string{source, target, fstype, flagString(flags), data}, " "))
	return f.fail[target]
}

func (f *fakeMounter) Mounted(target string) bool { return f.mounted[target] }

func TestEarlyMountTable(t *testing.T) {
	tests := []struct {
		name    string
		mounted map[string]bool
		fail    map[string]error
		want    []string
		wantErr []string
	}{
		{
			name: "fresh root",
			want: []string{
				"proc /proc proc nosuid,nodev,noexec ",
				"sysfs /sys sysfs nosuid,nodev,noexec ",
				"devtmpfs /dev devtmpfs nosuid mode=755",
				"devpts /dev/pts devpts nosuid,noexec gid=5,mode=620,ptmxmode=000",
				"tmpfs /dev/shm tmpfs nosuid,nodev mode=1777",
				"tmpfs /run tmpfs nosuid,nodev mode=755",
			},
		},
		{
			name:    "initramfs moved /dev and /run in",
			mounted: map[string]bool{"/dev": true, "/run": true},
			want: []string{
				"proc /proc proc nosuid,nodev,noexec ",
				"sysfs /sys sysfs nosuid,nodev,noexec ",
				"devpts /dev/pts devpts nosuid,noexec gid=5,mode=620,ptmxmode=000",
				"tmpfs /dev/shm tmpfs nosuid,nodev mode=1777",
			},
		},
		{
			name: "a failure does not stop the table",
			fail: map[string]error{"/sys": unix.EPERM},
			want: []string{
				"proc /proc proc nosuid,nodev,noexec ",
				"sysfs /sys sysfs nosuid,nodev,noexec ",
				"devtmpfs /dev devtmpfs nosuid mode=755",
				"devpts /dev/pts devpts nosuid,noexec gid=5,mode=620,ptmxmode=000",
				"tmpfs /dev/shm tmpfs nosuid,nodev mode=1777",
				"tmpfs /run tmpfs nosuid,nodev mode=755",
			},
			wantErr: []string{"sysfs sysfs on /sys (nosuid,nodev,noexec)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeMounter{mounted: tt.mounted, fail: tt.fail}
			var failed []string
			err := RunTable(EarlyMounts(f), func(c Creator, err error) { failed = append(failed, c.String()) })
			if diff := cmp.Diff(tt.want, f.calls); diff != "" {
				t.Errorf("mount calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErr, failed); diff != "" {
				t.Errorf("failed steps (-want +got):\n%s", diff)
			}
			if (err != nil) != (len(tt.wantErr) > 0) || (err != nil && !errors.Is(err, unix.EPERM)) {
				t.Errorf("RunTable error = %v", err)
			}
		})
	}
}

func TestCgroupMounts(t *testing.T) {
	procCgroups := "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t10\t1\ncpu\t1\t10\t1\nmemory\t4\t205\t1\nnet_cls\t0\t2\t0\n"
	tests := []struct {
		name     string
		cmdline  string
		cgroup2  bool
		wantMode CgroupMode
		want     []string
	}{
		{"v2 when offered", "", true, CgroupV2, []string{"cgroup2 /sys/fs/cgroup cgroup2 nosuid,nodev,noexec "}},
		{"systemd's knob asks for v1", "systemd.unified_cgroup_hierarchy=0", true, CgroupV1, nil},
		{"ours wins over systemd's", "corral.cgroup=v2 systemd.unified_cgroup_hierarchy=0", true, CgroupV2, nil},
		{"v1 without cgroup2", "corral.cgroup=v2", false, CgroupV1, []string{
			"tmpfs /sys/fs/cgroup tmpfs nosuid,nodev,noexec mode=755",
			"cgroup /sys/fs/cgroup/cpuset cgroup nosuid,nodev,noexec cpuset",
			"cgroup /sys/fs/cgroup/cpu cgroup nosuid,nodev,noexec cpu",
			"cgroup /sys/fs/cgroup/memory cgroup nosuid,nodev,noexec memory",
			"cgroup /sys/fs/cgroup/systemd cgroup nosuid,nodev,noexec none,name=systemd",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := ChooseCgroup(ParseCmdline(tt.cmdline), tt.cgroup2)
			if mode != tt.wantMode {
				t.Fatalf("mode = %d, want %d", mode, tt.wantMode)
			}
			if tt.want == nil {
				return
			}
			f := &fakeMounter{}
			RunTable(CgroupMounts(f, mode, ParseProcCgroups(procCgroups)), nil)
			if diff := cmp.Diff(tt.want, f.calls); diff != "" {
				t.Errorf("mount calls (-want +got):\n%s", diff)
			}
		})
	}
	if !HaveFilesystem("nodev\tproc\nnodev\tcgroup2\n\text4\n", "cgroup2") || HaveFilesystem("nodev\tcgroup\n", "cgroup2") {
		t.Error("HaveFilesystem misreads /proc/filesystems")
	}
}

func TestCmdline(t *testing.T) {
	tests := []struct {
		in         string
		want       Cmdline
		wantTarget string
	}{
		{"", Cmdline{}, ""},
		{"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro quiet", Cmdline{}, ""},
		{"corral.unit=multi-user.target corral.debug", Cmdline{Unit: "multi-user.target", Debug: true}, "multi-user.target"},
		{"corral.debug=0 single", Cmdline{Rescue: "rescue.target"}, "rescue.target"},
		{"emergency", Cmdline{Rescue: "emergency.target"}, "emergency.target"},
		{"-b", Cmdline{Rescue: "emergency.target"}, "emergency.target"},
		{"rescue corral.unit=x.target", Cmdline{Unit: "x.target", Rescue: "rescue.target"}, "x.target"},
		{"corral.unit=a.target systemd.unit=b.target", Cmdline{Unit: "a.target"}, "a.target"},
		{"systemd.unit=b.target", Cmdline{Unit: "b.target"}, "b.target"},
		{`corral.unit="my unit.target" S`, Cmdline{Unit: "my unit.target", Rescue: "rescue.target"}, "my unit.target"},
		{"single=1 1=x", Cmdline{}, ""},
		{"corral.cgroup=v1", Cmdline{Cgroup: CgroupV1}, ""},
		{"systemd.unified_cgroup_hierarchy", Cmdline{Cgroup: CgroupV2}, ""},
		{"systemd.unified_cgroup_hierarchy=no corral.onfatal=poweroff", Cmdline{Cgroup: CgroupV1, OnFatal: "poweroff"}, ""},
		{"corral.onfatal=explode\n", Cmdline{}, ""},
	}
	for _, tt := range tests {
		got := ParseCmdline(tt.in)
		if got != tt.want || got.Target() != tt.wantTarget {
			t.Errorf("ParseCmdline(%q) = %+v target %q, want %+v target %q", tt.in, got, got.Target(), tt.want, tt.wantTarget)
		}
	}
}

func TestFstab(t *testing.T) {
	in := `# /etc/fstab: static file system information.
UUID=1234-abcd  /               ext4    errors=remount-ro,noatime 0       1
/dev/vdb	/srv/my\040data	xfs	defaults,nofail,x-systemd.device-timeout=5	0	2
tmpfs /tmp tmpfs
proc /proc
broken
`
	want := []FstabEntry{
		{Spec: "UUID=1234-abcd", File: "/", VfsType: "ext4", Options: []string{"errors=remount-ro", "noatime"}, Passno: 1},
		{Spec: "/dev/vdb", File: "/srv/my data", VfsType: "xfs", Options: []string{"defaults", "nofail", "x-systemd.device-timeout=5"}, Passno: 2},
		{Spec: "tmpfs", File: "/tmp", VfsType: "tmpfs", Options: []string{"defaults"}},
		{Spec: "proc", File: "/proc", VfsType: "auto", Options: []string{"defaults"}},
	}
	if diff := cmp.Diff(want, ParseFstab(in)); diff != "" {
		t.Errorf("ParseFstab (-want +got):\n%s", diff)
	}
}

func TestMountOptions(t *testing.T) {
	tests := []struct {
		opts      string
		wantFlags uintptr
		wantData  string
	}{
		{"defaults", 0, ""},
		{"ro,noatime,errors=remount-ro", unix.MS_RDONLY | unix.MS_NOATIME, "errors=remount-ro"},
		{"ro,rw,nosuid,suid,nodev", unix.MS_NODEV, ""},
		{"defaults,nofail,_netdev,x-systemd.automount,comment=x,user,noauto,size=10%,mode=1777", 0, "size=10%,mode=1777"},
		{"sync,dirsync,lazytime,relatime", unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC | unix.MS_LAZYTIME | unix.MS_RELATIME, ""},
	}
	for _, tt := range tests {
		f, d := MountOptions(strings.Split(tt.opts, ","))
		if f != tt.wantFlags || d != tt.wantData {
			t.Errorf("MountOptions(%q) = %#x %q, want %#x %q", tt.opts, f, d, tt.wantFlags, tt.wantData)
		}
	}
}

func TestRootRemount(t *testing.T) {
	tests := []struct {
		fstab string
		want  string
	}{
		{"", " / " + " " + " "},
		{"/dev/vda1 / ext4 rw,noatime,errors=remount-ro 0 1\n", " /  noatime errors=remount-ro"},
		{"/dev/vda1 / ext4 ro 0 1\n/dev/vdb /srv ext4 rw 0 2\n", " /  ro "},
	}
	for _, tt := range tests {
		f := &fakeMounter{}
		r := RootRemount(f, ParseFstab(tt.fstab))
		if err := r.Create(); err != nil {
			t.Fatal(err)
		}
		if len(f.calls) != 1 || f.calls[0] != tt.want {
			t.Errorf("fstab %q: remount calls %q, want [%q]", tt.fstab, f.calls, tt.want)
		}
	}
	if s := (Remount{Target: "/", Flags: unix.MS_NOATIME, Data: "errors=remount-ro"}).String(); s != "remount / (rw,noatime,errors=remount-ro)" {
		t.Errorf("Remount.String() = %q", s)
	}
}

func TestModulesDep(t *testing.T) {
	dep := `kernel/drivers/acpi/button.ko.xz:
kernel/drivers/input/evdev.ko: kernel/drivers/input/input-core.ko
kernel/fs/a.ko.zst: kernel/fs/b.ko kernel/fs/c.ko
# comment
`
	m := ParseModulesDep(dep)
	tests := []struct {
		name string
		want []string
	}{
		{"button", []string{"kernel/drivers/acpi/button.ko.xz"}},
		{"evdev", []string{"kernel/drivers/input/input-core.ko", "kernel/drivers/input/evdev.ko"}},
		{"a", []string{"kernel/fs/c.ko", "kernel/fs/b.ko", "kernel/fs/a.ko.zst"}},
		{"input-core", []string{}},
		{"nope", nil},
	}
	for _, tt := range tests {
		got := m.LoadOrder(tt.name)
		if tt.name == "input-core" {
			if len(got) != 0 {
				t.Errorf("input-core is only a dependency here, got %q", got)
			}
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("LoadOrder(%q) (-want +got):\n%s", tt.name, diff)
		}
	}
	for in, want := range map[string]string{"kernel/x/snd-hda.ko.gz": "snd_hda", "button": "button", "evdev.ko": "evdev"} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
	if b := ParseModulesBuiltin("kernel/drivers/acpi/button.ko\nkernel/x/y-z.ko\n"); !b["button"] || !b["y_z"] || b["evdev"] {
		t.Errorf("ParseModulesBuiltin = %v", b)
	}
}

func TestInputEvent(t *testing.T) {
	ev := func(typ, code uint16, val int32) []byte {
		b := make([]byte, 16, InputEventSize) // timeval
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = binary.NativeEndian.AppendUint16(b, code)
		return binary.NativeEndian.AppendUint32(b, uint32(val))
	}
	tests := []struct {
		name  string
		in    []byte
		want  InputEvent
		press bool
	}{
		{"power press", ev(EvKey, KeyPower, 1), InputEvent{EvKey, KeyPower, 1}, true},
		{"power release", ev(EvKey, KeyPower, 0), InputEvent{EvKey, KeyPower, 0}, false},
		{"power autorepeat", ev(EvKey, KeyPower, 2), InputEvent{EvKey, KeyPower, 2}, false},
		{"other key", ev(EvKey, 30, 1), InputEvent{EvKey, 30, 1}, false},
		{"sync event", ev(0, 0, 0), InputEvent{}, false},
		{"negative value", ev(3, 0, -5), InputEvent{3, 0, -5}, false},
	}
	for _, tt := range tests {
		got, err := DecodeInputEvent(tt.in)
		if err != nil || got != tt.want || got.PowerPressed() != tt.press {
			t.Errorf("%s: %+v, %v, pressed %v; want %+v pressed %v", tt.name, got, err, got.PowerPressed(), tt.want, tt.press)
		}
	}
	if _, err := DecodeInputEvent(make([]byte, 23)); err == nil {
		t.Error("short event decoded")
	}
}

func TestUnmountOrder(t *testing.T) {
	mi := `22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw
21 1 0:20 / /sys rw shared:6 - sysfs sysfs rw
1 0 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 21 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
40 1 254:16 / /srv/my\040data rw - ext4 /dev/vdb rw
41 40 0:40 / /srv/my\040data/tmp rw - tmpfs tmpfs rw
50 60 0:50 / /mnt/moved/inner rw - tmpfs tmpfs rw
60 1 0:60 / /mnt/moved rw - tmpfs tmpfs rw
`
	var got []string
	for _, m := range UnmountOrder(ParseMountinfo(mi)) {
		got = append(got, m.Target)
	}
	want := []string{"/mnt/moved/inner", "/mnt/moved", "/srv/my data/tmp", "/srv/my data", "/sys/fs/cgroup", "/sys", "/proc"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UnmountOrder (-want +got):\n%s", diff)
	}
	ms := ParseMountinfo(mi)
	if !ms[2].BlockBacked() || ms[0].BlockBacked() || ms[4].Source != "/dev/vdb" {
		t.Errorf("ParseMountinfo: %+v", ms)
	}
}

func TestHostname(t *testing.T) {
	for in, want := range map[string]string{"": "", "# c\n\n  node-1 \nother\n": "node-1", "box": "box"} {
		if got := ParseHostname(in); got != want {
			t.Errorf("ParseHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHandoffRoundTrip(t *testing.T) {
	h := Handoff{AgentPID: 42, AgentStart: time.Unix(1700000000, 5), Dropped: 3,
		Records: []Record{{PID: 7, StartTime: 99, Status: 1 << 8, Time: time.Unix(1, 2)}, {PID: 8}}}
	env, fd, err := h.Export()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := strings.CutPrefix(env, HandoffEnv+"=")
	if !ok {
		t.Fatalf("env %q", env)
	}
	got, err := ImportHandoff(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Error("ImportHandoff left the handoff fd open")
		unix.Close(fd)
	}
	if diff := cmp.Diff(h, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if _, err := ImportHandoff("agent=x"); err == nil {
		t.Error("bad handoff accepted")
	}
}

func TestBootLoggerCopiesWarningsToKmsg(t *testing.T) {
	var con, kmsg strings.Builder
	log := NewBootLogger(&con, &kmsg, slog.LevelInfo).With("component", "sysinit")
	log.Debug("hidden")
	log.Info("booting")
	log.Error("mount failed", "path", "/sys")
	if strings.Contains(con.String(), "hidden") || !strings.Contains(con.String(), "booting") || !strings.Contains(con.String(), "mount failed") {
		t.Errorf("console:\n%s", con.String())
	}
	k := kmsg.String()
	if strings.Contains(k, "booting") || !strings.HasPrefix(k, "<4>corral: ") || !strings.Contains(k, "mount failed") || strings.Contains(k, "time=") || !strings.Contains(k, "component=sysinit") {
		t.Errorf("kmsg:\n%s", k)
	}
}

func TestSignalMapping(t *testing.T) {
	for _, a := range []Action{ActionPoweroff, ActionReboot, ActionHalt, ActionReexec} {
		if got := pid1Signals[SignalFor(a)]; got != a {
			t.Errorf("SignalFor(%v) = %v, which PID 1 reads as %v", a, SignalFor(a), got)
		}
	}
	if RebootCmd(ActionPoweroff) != unix.LINUX_REBOOT_CMD_POWER_OFF || RebootCmd(ActionReboot) != unix.LINUX_REBOOT_CMD_RESTART || RebootCmd(ActionHalt) != unix.LINUX_REBOOT_CMD_HALT {
		t.Error("RebootCmd maps actions wrongly")
	}
}
