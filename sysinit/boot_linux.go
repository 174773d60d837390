package sysinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SetupConsole makes the terminal at path our controlling terminal and
// stdin, stdout and stderr, so that the core and everything it starts
// without a log pipe write to the console, and ctrl-c on it reaches the
// foreground job. setsid fails harmlessly when we already lead a session.
func SetupConsole(path string) error {
	unix.Setsid()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("console %s: %w", path, err)
	}
	var errs []error
	if err := unix.IoctlSetInt(fd, unix.TIOCSCTTY, 1); err != nil {
		errs = append(errs, fmt.Errorf("console %s: TIOCSCTTY: %w", path, err))
	}
	for n := 0; n <= 2; n++ {
		if fd == n {
			continue
		}
		if err := unix.Dup3(fd, n, 0); err != nil {
			errs = append(errs, fmt.Errorf("console %s: dup to fd %d: %w", path, n, err))
		}
	}
	if fd > 2 {
		unix.Close(fd)
	} else {
		// The console landed on 0, 1 or 2 because they were closed; it
		// must survive exec of the core.
		unix.Syscall(unix.SYS_FCNTL, uintptr(fd), unix.F_SETFD, 0)
	}
	return errors.Join(errs...)
}

// ParseHostname returns the first name in an /etc/hostname file (comments
// and blank lines skipped), or "" if there is none.
func ParseHostname(s string) string {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && l[0] != '#' {
			return l
		}
	}
	return ""
}

// SetHostname sets the hostname from the file at path; with no file or no
// name in it, the hostname is "localhost" as systemd does.
func SetHostname(path string) (string, error) {
	name := "localhost"
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("hostname: %w", err)
	}
	if n := ParseHostname(string(b)); n != "" {
		name = n
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		return "", fmt.Errorf("hostname %q: %w", name, err)
	}
	return name, nil
}

// LoopbackUp sets IFF_UP on "lo"; the kernel then adds 127.0.0.1/8 and ::1
// itself. Many daemons bind to localhost before any network unit runs.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback lo: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback lo: set up: %w", err)
	}
	return nil
}

// CgroupTable reads /proc to decide the cgroup layout and returns its
// mounts. It runs after /proc is mounted.
func CgroupTable(m Mounter, c Cmdline) ([]Creator, CgroupMode, error) {
	fs, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return nil, 0, fmt.Errorf("cgroups: %w", err)
	}
	mode := ChooseCgroup(c, HaveFilesystem(string(fs), "cgroup2"))
	var ctrl []string
	if mode == CgroupV1 {
		b, err := os.ReadFile("/proc/cgroups")
		if err != nil {
			return nil, mode, fmt.Errorf("cgroups: %w", err)
		}
		ctrl = ParseProcCgroups(string(b))
	}
	return CgroupMounts(m, mode, ctrl), mode, nil
}

// KernelRelease is uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// LoadModules loads the named modules and their dependencies from dir
// (/lib/modules/$(uname -r)) with finit_module(2), skipping those built in
// or already loaded. It is the small part of modprobe PID 1 needs before any
// udev runs (the power button).
func LoadModules(log *slog.Logger, dir string, names ...string) error {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	deps, err := ReadModulesDep(f, names...)
	f.Close()
	if err != nil {
		return fmt.Errorf("modules: %s: %w", f.Name(), err)
	}
	builtin := map[string]bool{}
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		builtin, _ = ReadModulesBuiltin(f, names...)
		f.Close()
	}
	var errs []error
	for _, n := range names {
		name := ModuleName(n)
		if builtin[name] {
			log.Debug("module built in", "module", name)
			continue
		}
		order := deps.LoadOrder(name)
		if order == nil {
			errs = append(errs, fmt.Errorf("module %s: not in %s/modules.dep", name, dir))
			continue
		}
		for _, f := range order {
			if err := loadModule(dir, f); err != nil {
				errs = append(errs, err)
				break
			}
			log.Debug("module loaded", "module", ModuleName(f))
		}
	}
	return errors.Join(errs...)
}

func loadModule(dir, file string) error {
	if _, err := os.Stat("/sys/module/" + ModuleName(file)); err == nil {
		return nil
	}
	p := filepath.Join(dir, file)
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("module %s: %w", p, err)
	}
	defer f.Close()
	flags := 0
	if ModuleName(file)+".ko" != filepath.Base(file) {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("module %s: finit_module: %w", p, err)
	}
	return nil
}

// FindInputDevices returns the /dev nodes of the input event devices whose
// name (in sysfs) is name, e.g. "Power Button".
func FindInputDevices(sysfs, dev, name string) []string {
	names, _ := filepath.Glob(filepath.Join(sysfs, "class/input/event*/device/name"))
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		ev := filepath.Base(filepath.Dir(filepath.Dir(n)))
		out = append(out, filepath.Join(dev, "input", ev))
	}
	return out
}

// WatchPowerButton calls press each time a "Power Button" input device
// reports KEY_POWER: in a VM, that is QMP system_powerdown or an ACPI power
// button press. The device appears asynchronously after its module is
// loaded, so it looks for one for up to wait before giving up (logged).
// It returns when ctx is done.
func WatchPowerButton(ctx context.Context, log *slog.Logger, wait time.Duration, press func()) {
	var devs []string
	deadline := time.Now().Add(wait)
	for {
		for _, d := range FindInputDevices("/sys", "/dev", "Power Button") {
			if _, err := os.Stat(d); err == nil {
				devs = append(devs, d)
			}
		}
		if len(devs) > 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if len(devs) == 0 {
		log.Info("no ACPI power button found; poweroff only by signal or API")
		return
	}
	for _, d := range devs {
		f, err := os.Open(d)
		if err != nil {
			log.Warn("power button", "path", d, "err", err)
			continue
		}
		log.Info("watching power button", "path", d)
		go func() { <-ctx.Done(); f.Close() }()
		go readPowerButton(log, f, press)
	}
}

func readPowerButton(log *slog.Logger, f *os.File, press func()) {
	buf := make([]byte, InputEventSize*16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				log.Warn("power button read", "path", f.Name(), "err", err)
			}
			return
		}
		for i := 0; i+InputEventSize <= n; i += InputEventSize {
			if ev, _ := DecodeInputEvent(buf[i:]); ev.PowerPressed() {
				log.Info("power button pressed", "path", f.Name())
				press()
			}
		}
	}
}
