package sysinit

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mounter is the part of the kernel the early mounts touch. It exists so
// that the mount table can be checked in a table test without mounting
// anything; RealMounter is the kernel.
type Mounter interface {
	MkdirAll(path string, mode os.FileMode) error
	Mount(source, target, fstype string, flags uintptr, data string) error
	// Mounted reports whether target is already a mount point: initramfs
	// moves /dev, /proc, /sys and /run into the real root before exec'ing
	// init, and mounting again would stack a second copy on top.
	Mounted(target string) bool
}

// Creator is one step of early boot, u-root style: a value that can be
// listed, printed and created, so that the boot sequence reads like a table.
type Creator interface {
	Create() error
	String() string
}

// Mount is one filesystem mounted at boot.
type Mount struct {
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
	Mode   os.FileMode // of Target, created if missing

	M Mounter
}

var _ Creator = Mount{}

// Create mounts m unless its target is already a mount point.
func (m Mount) Create() error {
	if err := m.M.MkdirAll(m.Target, m.Mode); err != nil {
		return fmt.Errorf("mount %s: mkdir: %w", m.Target, err)
	}
	if m.M.Mounted(m.Target) {
		return nil
	}
	if err := m.M.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	return nil
}

func (m Mount) String() string {
	s := m.FSType + " " + m.Source + " on " + m.Target
	if o := flagString(m.Flags); o != "" || m.Data != "" {
		s += " (" + strings.Trim(o+","+m.Data, ",") + ")"
	}
	return s
}

// Remount changes the options of an existing mount (the root filesystem,
// which the kernel or the initramfs mounted read-only).
type Remount struct {
	Target string
	Flags  uintptr
	Data   string
	M      Mounter
}

var _ Creator = Remount{}

func (r Remount) Create() error {
	if err := r.M.Mount("", r.Target, "", unix.MS_REMOUNT|r.Flags, r.Data); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	return nil
}

func (r Remount) String() string {
	o := flagString(r.Flags)
	if r.Flags&unix.MS_RDONLY == 0 {
		o = strings.Trim("rw,"+o, ",")
	}
	return "remount " + r.Target + " (" + strings.Trim(o+","+r.Data, ",") + ")"
}

// Step is a Creator made of a function, for boot steps that are not mounts
// (hostname, loopback) but belong in the same table.
type Step struct {
	Name string
	Fn   func() error
}

func (s Step) Create() error  { return s.Fn() }
func (s Step) String() string { return s.Name }

const (
	nosuid = unix.MS_NOSUID
	nodev  = unix.MS_NODEV
	noexec = unix.MS_NOEXEC
)

// EarlyMounts is the table of filesystems every boot needs before the core
// can run, in order. Cgroups come from CgroupMounts, because which ones
// depends on /proc, mounted here first.
func EarlyMounts(m Mounter) []Creator {
	return []Creator{
		Mount{Source: "proc", Target: "/proc", FSType: "proc", Flags: nosuid | nodev | noexec, Mode: 0o555, M: m},
		Mount{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nosuid | nodev | noexec, Mode: 0o555, M: m},
		Mount{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: nosuid, Data: "mode=755", Mode: 0o755, M: m},
		Mount{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: nosuid | noexec, Data: "gid=5,mode=620,ptmxmode=000", Mode: 0o755, M: m},
		Mount{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=1777", Mode: 0o1777, M: m},
		Mount{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: nosuid | nodev, Data: "mode=755", Mode: 0o755, M: m},
	}
}

// CgroupMode is the cgroup layout to mount.
type CgroupMode int

const (
	CgroupV2 CgroupMode = 2 // one unified cgroup2 hierarchy at /sys/fs/cgroup
	CgroupV1 CgroupMode = 1 // tmpfs at /sys/fs/cgroup, one hierarchy per controller
)

// ChooseCgroup picks the layout: v2 when the kernel offers cgroup2 unless
// the command line asks for v1 (corral.cgroup=v1 or systemd's
// systemd.unified_cgroup_hierarchy=0, so that images set up for systemd
// boot the same way), else v1.
func ChooseCgroup(c Cmdline, haveCgroup2 bool) CgroupMode {
	if !haveCgroup2 || c.Cgroup == CgroupV1 {
		return CgroupV1
	}
	return CgroupV2
}

// CgroupMounts returns the cgroup mounts for mode. controllers are the
// enabled v1 controllers from /proc/cgroups; each gets its own hierarchy
// (the layout agent/cgroup expects), plus the controller-less name=systemd
// hierarchy that tracks membership.
func CgroupMounts(m Mounter, mode CgroupMode, controllers []string) []Creator {
	const base = "/sys/fs/cgroup"
	fl := uintptr(nosuid | nodev | noexec)
	if mode == CgroupV2 {
		return []Creator{Mount{Source: "cgroup2", Target: base, FSType: "cgroup2", Flags: fl, Mode: 0o755, M: m}}
	}
	out := []Creator{Mount{Source: "tmpfs", Target: base, FSType: "tmpfs", Flags: fl, Data: "mode=755", Mode: 0o755, M: m}}
	for _, c := range controllers {
		out = append(out, Mount{Source: "cgroup", Target: base + "/" + c, FSType: "cgroup", Flags: fl, Data: c, Mode: 0o555, M: m})
	}
	return append(out, Mount{Source: "cgroup", Target: base + "/systemd", FSType: "cgroup", Flags: fl, Data: "none,name=systemd", Mode: 0o555, M: m})
}

// ParseProcCgroups returns the enabled controllers listed in /proc/cgroups
// (columns: subsys_name hierarchy num_cgroups enabled).
func ParseProcCgroups(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") || f[3] != "1" {
			continue
		}
		out = append(out, f[0])
	}
	return out
}

// HaveFilesystem reports whether /proc/filesystems lists fstype.
func HaveFilesystem(procFilesystems, fstype string) bool {
	for _, l := range strings.Split(procFilesystems, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

// RunTable creates every entry in order and returns one error per failure
// (joined), never stopping early: a missing /dev/shm must not cost the node
// its cgroups. The caller logs each.
func RunTable(table []Creator, onErr func(Creator, error)) error {
	var errs []error
	for _, c := range table {
		if err := c.Create(); err != nil {
			errs = append(errs, err)
			if onErr != nil {
				onErr(c, err)
			}
		}
	}
	return errors.Join(errs...)
}
