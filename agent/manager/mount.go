package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/unit"
)

// The .mount unit runtime: starting a mount unit is mount(2) of What= on
// Where= (under the manager's root) with Options= split into flags and
// filesystem data; stopping it is umount2(2). There is no mount helper
// (mount.nfs and friends): the kernel does the work, which is all a Debian
// boot's fstab needs (ext4, tmpfs, proc, bind mounts).
//
// Hook (runtime.go, executor): Start calls x.m.startMount(ctx, u) for
// unit.TypeMount and then marks the unit active; Stop calls
// x.m.stopMount(ctx, u) before marking it inactive.

func (m *Manager) startMount(ctx context.Context, u *unit.Unit) error {
	if u.Mount == nil {
		return fmt.Errorf("unit %s has no [Mount] section", u.Name)
	}
	msg, err := mountUnit(ctx, m.cfg.Root, u.Mount)
	if msg != "" {
		m.logs.Append(u.Name, "core", msg)
	}
	if err != nil {
		return fmt.Errorf("unit %s: %w", u.Name, err)
	}
	return nil
}

func (m *Manager) stopMount(ctx context.Context, u *unit.Unit) error {
	if u.Mount == nil {
		return nil
	}
	if err := unmountUnit(ctx, m.cfg.Root, u.Mount); err != nil {
		return fmt.Errorf("unit %s: %w", u.Name, err)
	}
	return nil
}

// mountOptions is Options= split the way mount(8) splits it.
type mountOptions struct {
	flags       uintptr   // MS_* for the mount itself
	propagation []uintptr // MS_SHARED/MS_PRIVATE/... (each a separate mount(2) call)
	data        []string  // filesystem-specific options, passed as data
	bind        bool      // bind or rbind
}

var mountFlagTable = map[string]struct {
	set   bool
	flags uintptr
}{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"sync": {true, unix.MS_SYNCHRONOUS}, "async": {false, unix.MS_SYNCHRONOUS},
	"dirsync": {true, unix.MS_DIRSYNC},
	"mand":    {true, unix.MS_MANDLOCK}, "nomand": {false, unix.MS_MANDLOCK},
	"noatime": {true, unix.MS_NOATIME}, "atime": {false, unix.MS_NOATIME},
	"nodiratime": {true, unix.MS_NODIRATIME}, "diratime": {false, unix.MS_NODIRATIME},
	"relatime": {true, unix.MS_RELATIME}, "norelatime": {false, unix.MS_RELATIME},
	"strictatime": {true, unix.MS_STRICTATIME}, "nostrictatime": {false, unix.MS_STRICTATIME},
	"lazytime": {true, unix.MS_LAZYTIME}, "nolazytime": {false, unix.MS_LAZYTIME},
	"silent": {true, unix.MS_SILENT}, "loud": {false, unix.MS_SILENT},
	"bind": {true, unix.MS_BIND}, "rbind": {true, unix.MS_BIND | unix.MS_REC},
	"remount": {true, unix.MS_REMOUNT},
}

var propagationTable = map[string]uintptr{
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// userspaceOnly are options for mount(8), fstab tools or the generator,
// never for the kernel.
func userspaceOnly(o string) bool {
	switch o {
	case "", "defaults", "auto", "noauto", "nofail", "user", "users", "nouser", "owner", "group", "_netdev", "sw":
		return true
	}
	return strings.HasPrefix(o, "x-") || strings.HasPrefix(o, "comment=") || strings.HasPrefix(o, "X-")
}

func parseMountOptions(s string) mountOptions {
	var mo mountOptions
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if userspaceOnly(o) {
			continue
		}
		if f, ok := mountFlagTable[o]; ok {
			if f.set {
				mo.flags |= f.flags
			} else {
				mo.flags &^= f.flags
			}
			if o == "bind" || o == "rbind" {
				mo.bind = true
			}
			continue
		}
		if p, ok := propagationTable[o]; ok {
			mo.propagation = append(mo.propagation, p)
			continue
		}
		mo.data = append(mo.data, o)
	}
	return mo
}

// mountInfo is the subset of /proc/self/mountinfo the runtime needs.
type mountInfo struct{ source, fstype, options string }

// mountedAt reports what is mounted at path (the topmost mount), reading
// mountinfo (octal escapes decoded).
func mountedAt(path string) (mountInfo, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountInfo{}, false, err
	}
	defer f.Close()
	var found mountInfo
	ok := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, okSep := strings.Cut(sc.Text(), " - ")
		fs := strings.Fields(pre)
		ps := strings.Fields(post)
		if !okSep || len(fs) < 6 || len(ps) < 2 {
			continue
		}
		if unescapeMountinfo(fs[4]) == path {
			found, ok = mountInfo{source: unescapeMountinfo(ps[1]), fstype: ps[0], options: fs[5]}, true
		}
	}
	return found, ok, sc.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountUnit mounts m under root. The root filesystem, and any Where= that
// is already a mount point, is remounted with the unit's options instead
// (for "/" this is what systemd-remount-fs.service does). It returns a
// message for the unit's log when it did something other than a plain mount.
func mountUnit(ctx context.Context, root string, m *unit.Mount) (string, error) {
	where := filepath.Join(root, m.Where)
	mo := parseMountOptions(m.Options)
	data := strings.Join(mo.data, ",")

	if info, mounted, err := mountedAt(where); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	} else if mounted {
		if m.Where != "/" && mo.flags&unix.MS_REMOUNT == 0 {
			return fmt.Sprintf("%s is already mounted (%s %s on %s).", m.Where, info.fstype, info.source, where), nil
		}
		if err := unix.Mount("", where, "", mo.flags|unix.MS_REMOUNT, data); err != nil {
			return "", fmt.Errorf("remount %s (%s): %w", where, m.Options, err)
		}
		return fmt.Sprintf("Remounted %s with %s.", m.Where, m.Options), nil
	}

	what := m.What
	if strings.HasPrefix(what, "/dev/") || mo.bind {
		if mo.bind && !strings.HasPrefix(what, "/dev/") {
			what = filepath.Join(root, what)
		}
		if err := waitPath(ctx, what, m.TimeoutSec); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(where, os.FileMode(m.DirectoryMode)); err != nil {
		return "", fmt.Errorf("create mount point %s: %w", where, err)
	}

	types := []string{m.Type}
	if m.Type == "" || m.Type == "auto" {
		if mo.bind {
			types = []string{""}
		} else {
			types = probeTypes()
		}
	}
	flags := mo.flags &^ unix.MS_REMOUNT
	var errs []error
	for _, t := range types {
		err := unix.Mount(what, where, t, flags, data)
		if err == nil {
			errs = nil
			break
		}
		// Read-only media: mount(8) retries read-only unless told not to.
		if !m.ReadWriteOnly && flags&unix.MS_RDONLY == 0 && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS)) {
			if err2 := unix.Mount(what, where, t, flags|unix.MS_RDONLY, data); err2 == nil {
				errs = nil
				break
			}
		}
		errs = append(errs, fmt.Errorf("mount %s on %s type %q (%s): %w", what, where, t, m.Options, err))
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	// A bind mount ignores the flags; they take effect on a remount.
	if mo.bind && flags&^(unix.MS_BIND|unix.MS_REC) != 0 {
		if err := unix.Mount("", where, "", flags|unix.MS_REMOUNT|unix.MS_BIND, ""); err != nil {
			unix.Unmount(where, unix.MNT_DETACH)
			return "", fmt.Errorf("remount bind %s (%s): %w", where, m.Options, err)
		}
	}
	for _, p := range mo.propagation {
		if err := unix.Mount("", where, "", p, ""); err != nil {
			return "", fmt.Errorf("set propagation of %s (%s): %w", where, m.Options, err)
		}
	}
	return "", nil
}

// waitPath waits for a device node (udev or devtmpfs creates it a little
// after the driver probes) up to the unit's timeout.
func waitPath(ctx context.Context, p string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(p)
		if err == nil {
			return nil
		}
		if !os.IsNotExist(err) || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", p, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// probeTypes lists the block filesystems the kernel knows, for Type= auto.
func probeTypes() []string {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return []string{"ext4"}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 1 {
			out = append(out, f[0])
		}
	}
	return out
}

// unmountUnit unmounts m. The root filesystem is left alone: sysinit
// remounts it read-only as the last step of shutdown.
func unmountUnit(ctx context.Context, root string, m *unit.Mount) error {
	if m.Where == "/" {
		return nil
	}
	where := filepath.Join(root, m.Where)
	flags := 0
	if m.LazyUnmount {
		flags |= unix.MNT_DETACH
	}
	if m.ForceUnmount {
		flags |= unix.MNT_FORCE
	}
	for {
		if _, mounted, err := mountedAt(where); err != nil {
			return fmt.Errorf("read mountinfo: %w", err)
		} else if !mounted {
			return nil
		}
		// Stacked mounts: unmount until nothing is left at Where=.
		if err := unix.Unmount(where, flags); err != nil {
			return fmt.Errorf("unmount %s: %w", where, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
