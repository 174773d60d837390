package guest

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mount is one early mount of the guest, kept as a value so that the boot
// sequence reads like a table.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (m mount) String() string { return m.fstype + " on " + m.target }

func (m mount) Create() error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	return nil
}

var earlyMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "ptmxmode=0666"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

// Boot does PID 1's early work: mounts, the kernel modules listed in
// /modules.boot (dependency order, written by hack/vm/assets.sh), and
// loopback. Errors are logged and boot goes on: a VM that cannot reach the
// host is still better diagnosed from its console than a kernel panic.
func Boot(log *slog.Logger) {
	for _, m := range earlyMounts {
		if err := m.Create(); err != nil {
			log.Error("early mount", "err", err)
		}
	}
	if err := LoadModules("/modules.boot", "/lib/modules"); err != nil {
		log.Error("modules", "err", err)
	}
	if err := loopbackUp(); err != nil {
		log.Error("loopback", "err", err)
	}
	// Modules nothing needs before the host connects (net, vsock,
	// virtiofs, the power button) load while the agent already serves:
	// every finit_module under TCG costs milliseconds of relocation.
	go func() {
		if err := LoadModules("/modules.later", "/lib/modules"); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Error("modules", "err", err)
		}
	}()
	// The pod network is configured as soon as eth0 appears (virtio_net
	// is the first of the later modules), not after all of them.
	cmdline, _ := os.ReadFile("/proc/cmdline")
	c, ok, err := ParseCmdline(string(cmdline))
	if err != nil {
		log.Error("network", "err", err)
	}
	if ok {
		go func() {
			if err := ConfigureNet("eth0", c, 20*time.Second); err != nil {
				log.Error("network", "err", err)
			} else {
				log.Info("network", "addr", c.Addr, "gateway", c.Gateway, "uptime", Uptime())
			}
		}()
	}
}

// Uptime is the guest's time since boot, for the boot-time breakdown.
func Uptime() string {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0] + "s"
}

// LoadModules loads each .ko named in order (one per line) from dir with
// finit_module; a module already present (built in, or loaded) is fine.
func LoadModules(order, dir string) error {
	f, err := os.Open(order)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		ko, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(ko.Fd()), "", 0)
		ko.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load %s: %w", name, err)
		}
	}
	return sc.Err()
}

func loopbackUp() error { return linkUp("lo") }

// linkUp sets IFF_UP on an interface.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// FindPort waits for the virtio-serial port called name and returns its
// device path (/dev/vportNpM).
func FindPort(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range ports {
			b, err := os.ReadFile(p)
			if err == nil && strings.TrimSpace(string(b)) == name {
				dev := "/dev/" + filepath.Base(filepath.Dir(p))
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port named %q after %s", name, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
