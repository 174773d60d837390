package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/fstab"
	"corral.io/corral/agent/generator"
	"corral.io/corral/agent/job"
	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/tmpfiles"
	"corral.io/corral/agent/unit"
)

// The boot sequence of a core started by PID 1 (Config.Boot): what systemd
// does in its own PID 1 before it starts default.target, and what its
// generators do. It runs once per boot: a core restarted after a crash
// finds bootMarker and only takes /dev/log back if nobody owns it, so that
// tmpfiles' removals never hit a running system. See docs/BOOT.md.

// bootMarker says that this boot's steps ran (it lives on the /run tmpfs).
const bootMarker = "run/corral/booted"

// skippedUnits are systemd units that cannot work without systemd as PID 1,
// or whose job Corral does itself. Boot masks each one that is installed
// in the generator directory (an administrator's unit in /etc still wins)
// and says so once. docs/BOOT.md has the same list.
var skippedUnits = []struct{ name, why string }{
	{"systemd-journald.service", "Corral's log store keeps service output and /dev/log (corralctl logs)"},
	{"systemd-journald.socket", "Corral's log store keeps service output and /dev/log"},
	{"systemd-journald-dev-log.socket", "Corral owns /dev/log and feeds its log store"},
	{"systemd-journald-audit.socket", "no journald; audit netlink sockets are not supported"},
	{"systemd-journal-flush.service", "no journald to flush"},
	{"systemd-journal-catalog-update.service", "no journald"},
	{"systemd-udevd.service", "needs systemd's device units; devtmpfs provides the nodes until Corral's device manager"},
	{"systemd-udevd-control.socket", "no udevd"},
	{"systemd-udevd-kernel.socket", "no udevd (netlink sockets are not supported)"},
	{"systemd-udev-trigger.service", "no udevd to replay uevents to"},
	{"systemd-udev-settle.service", "no udevd to wait for"},
	{"systemd-logind.service", "needs systemd's D-Bus API for sessions and seats; ssh and getty logins work without it"},
	{"systemd-networkd.service", "needs systemd's D-Bus and device units; the network is configured before init"},
	{"systemd-networkd.socket", "no networkd"},
	{"systemd-networkd-wait-online.service", "no networkd"},
	{"systemd-tmpfiles-setup.service", "Corral applies tmpfiles.d itself at boot (create, remove, boot lines)"},
	{"systemd-tmpfiles-setup-dev.service", "Corral applies tmpfiles.d itself at boot; devtmpfs provides /dev"},
	{"systemd-tmpfiles-setup-dev-early.service", "Corral applies tmpfiles.d itself at boot; devtmpfs provides /dev"},
	{"systemd-update-utmp.service", "talks to PID 1 over systemd's private socket"},
	{"systemd-update-utmp-runlevel.service", "talks to PID 1 over systemd's private socket"},
	{"systemd-machine-id-commit.service", "Corral writes /etc/machine-id itself at boot"},
	{"systemd-random-seed.service", "Corral loads the random seed at boot and saves it at shutdown"},
	{"systemd-remount-fs.service", "the fstab generator's -.mount remounts / with its fstab options"},
	{"systemd-firstboot.service", "would prompt on the console; Corral creates the machine ID"},
}

// boot runs the boot steps and returns what must run at shutdown, after
// every unit stopped.
func (m *Manager) boot(ctx context.Context) (atShutdown func()) {
	root := m.cfg.Root
	t0 := time.Now()
	first := true
	if _, err := os.Stat(filepath.Join(root, bootMarker)); err == nil {
		first = false
		m.log.Info("boot steps already ran in this boot; core restarted")
	}
	if first {
		m.bootUnits(ctx)
	}
	sl := m.startSyslog()
	if first {
		m.bootTmpfiles(ctx)
		if err := os.WriteFile(filepath.Join(root, bootMarker), []byte(time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
			m.log.Warn("boot marker", "err", err)
		}
		m.log.Info("boot steps done", "took", time.Since(t0).Round(time.Millisecond))
	}
	return func() {
		if sl != nil {
			sl.close()
		}
		if err := tmpfiles.SaveRandomSeed(root); err != nil {
			m.log.Warn("save random seed", "err", err)
		}
	}
}

// generateEarly runs, on the first core of a boot, the generators that do
// not need loaded units (fstab, getty, masks), before the first load of
// every unit: loading ~300 Debian units twice (once more to see the
// generators' output) cost ~0.1 s of a TCG boot. New calls it.
func (m *Manager) generateEarly() {
	if _, err := os.Stat(filepath.Join(m.cfg.Root, bootMarker)); err == nil {
		return // a restarted core: the generator directory is this boot's
	}
	root := m.cfg.Root
	// fstab.Generate empties the generator directory first; the other
	// generators add to it.
	dir := filepath.Join(root, fstab.GeneratorDir)
	mounts, problems, err := fstab.Generate(root)
	if err != nil {
		m.log.Error("fstab generator", "err", err)
	}
	for _, p := range problems {
		m.log.Warn("fstab generator", "problem", p)
	}
	gettys, err := generator.Getty(dir, m.cmdline())
	if err != nil {
		m.log.Error("getty generator", "err", err)
	}
	for _, s := range skippedUnits {
		if !m.installed(s.name) {
			continue
		}
		if err := generator.Mask(dir, s.name); err != nil {
			m.log.Error("mask", "unit", s.name, "err", err)
			continue
		}
		msg := "skipped: " + s.name + ": " + s.why
		m.log.Info(msg)
		m.logs.Append(s.name, "core", msg)
	}
	m.log.Info("generators done", "mounts", mounts, "gettys", gettys)
}

// cmdline is the kernel command line (Config.Cmdline in tests).
func (m *Manager) cmdline() string {
	if m.cfg.Cmdline != "" {
		return m.cfg.Cmdline
	}
	b, _ := os.ReadFile("/proc/cmdline")
	return string(b)
}

// bootUnits does the early steps that change which units exist after the
// first load (generateEarly did the rest): machine ID, random seed, and
// the device units that loaded units refer to, which are then loaded on
// their own.
func (m *Manager) bootUnits(ctx context.Context) {
	root := m.cfg.Root
	if id, created, err := tmpfiles.EnsureMachineID(root); err != nil {
		m.log.Error("machine-id", "err", err)
	} else if created {
		m.log.Info("machine-id created", "id", id)
	}
	if err := tmpfiles.LoadRandomSeed(root); err != nil {
		m.log.Warn("load random seed", "err", err)
	}
	dir := filepath.Join(root, fstab.GeneratorDir)
	devices := m.deviceRefs()
	for _, tty := range generator.Consoles(m.cmdline()) { // each getty's line
		devices[unit.EscapePath("/dev/"+tty)+".device"] = true
	}
	names := make([]string, 0, len(devices))
	for d := range devices {
		if err := generator.Device(dir, d); err != nil {
			m.log.Warn("device unit", "unit", d, "err", err)
			continue
		}
		names = append(names, d)
	}
	m.loadGenerated(names)
	m.log.Info("device units", "count", len(names))
}

// loadGenerated (re)loads only the named units, whose files a generator
// just wrote, instead of a daemon-reload of everything.
func (m *Manager) loadGenerated(names []string) {
	if len(names) == 0 {
		return
	}
	m.loader.Invalidate() // the directory index predates the new files
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		m.addLocked(m.loader.Load(n), n)
	}
	m.linkLocked()
	m.gen++
	m.changes.Add(1)
}

// installed reports whether a unit file of that name is on the search path
// in a directory other than the generator's (so masks are written only for
// what the image has, and an earlier masked copy is not counted).
func (m *Manager) installed(name string) bool {
	gen := filepath.Join(m.cfg.Root, fstab.GeneratorDir)
	for _, d := range m.loader.Dirs {
		if d == gen {
			continue
		}
		if _, err := os.Lstat(filepath.Join(d, name)); err == nil {
			return true
		}
	}
	return false
}

// deviceRefs lists the device units that loaded units refer to and that
// have no unit file (Corral has no udev-made device units).
func (m *Manager) deviceRefs() map[string]bool {
	out := map[string]bool{}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, e := range m.units {
		e.mu.Lock()
		for _, deps := range e.own {
			for _, d := range deps {
				if unit.TypeOf(d) != unit.TypeDevice || unit.IsTemplate(d) {
					continue
				}
				if o := m.lookupLocked(d); o != nil && o.u.LoadState == unit.LoadLoaded {
					continue
				}
				out[d] = true
			}
		}
		e.mu.Unlock()
	}
	return out
}

// bootTmpfiles brings up local-fs.target (the fstab mounts, /tmp among
// them) and then applies tmpfiles.d like systemd-tmpfiles-setup.service
// (--create --remove --boot --exclude-prefix=/dev), before any ordinary
// service starts: D /tmp empties the freshly mounted tmpfs, never a /tmp
// that services already use.
func (m *Manager) bootTmpfiles(ctx context.Context) {
	// A root without systemd's units (a VM guest's initramfs) has no
	// local-fs.target and nothing to mount first.
	if m.get("local-fs.target").unit().LoadState == unit.LoadLoaded {
		if j, err := m.engine.Enqueue(ctx, "local-fs.target", job.Start, job.Replace); err != nil {
			m.log.Error("start local-fs.target", "err", err)
		} else if res, err := m.engine.Wait(ctx, j); err != nil || !res.Success() {
			m.log.Error("local-fs.target not reached", "result", res, "err", err)
		}
	}
	root := m.cfg.Root
	lines, errs := tmpfiles.Read(root, tmpfiles.BootSpecifiers(root))
	errs = append(errs, tmpfiles.Apply(lines, tmpfiles.Options{
		Root: root, Create: true, Remove: true, Boot: true,
		ExcludePrefixes: []string{"/dev"}, Log: m.log,
	})...)
	for i, err := range errs {
		if i == 10 {
			m.log.Warn("tmpfiles: more problems", "count", len(errs)-i)
			break
		}
		m.log.Warn("tmpfiles", "err", err)
	}
	m.log.Info("tmpfiles applied", "lines", len(lines), "problems", len(errs))
}

// devicepresent decides a device unit's state: active when the node it
// names exists under root (/dev/ttyS0 for dev-ttyS0.device, the class
// directory for sys-subsystem-*), failed otherwise. This stands in for
// udev's device units until Corral has a device manager; it is enough for
// BindsTo=dev-%i.device in serial-getty@.service and for fstab devices.
func devicepresent(root, name string) error {
	p := generator.DevicePath(name)
	if !strings.HasPrefix(p, "/dev/") && !strings.HasPrefix(p, "/sys/") {
		return fmt.Errorf("device %s: %s is not under /dev or /sys", name, p)
	}
	if _, err := os.Stat(filepath.Join(root, p)); err != nil {
		return fmt.Errorf("device %s: %w", name, err)
	}
	return nil
}

// syslog is Corral's /dev/log: a datagram socket whose messages go to the
// log store under the sender's unit (from its cgroup; its command name
// when it is in no unit), stream "syslog". Debian's rsyslog, when it runs,
// is not socket-activated for /dev/log under Corral (it only takes the fd
// when sd_booted(), i.e. when /run/systemd/system exists): it unlinks
// /dev/log and binds its own, and from then on owns it. Corral does not
// fight that; a restarted core takes /dev/log back only when nobody
// answers on it.
type syslog struct {
	conn *net.UnixConn
	wg   sync.WaitGroup
}

// syslogStream is the log store stream of messages that came in on /dev/log.
const syslogStream logs.Stream = "syslog"

func (m *Manager) startSyslog() *syslog {
	p := filepath.Join(m.cfg.Root, "dev/log")
	if fi, err := os.Lstat(p); err == nil {
		if c, err := net.Dial("unixgram", p); err == nil {
			c.Close()
			m.log.Info("/dev/log is served by another process; leaving it alone")
			return nil
		}
		if fi.Mode()&(fs.ModeSocket|fs.ModeSymlink) == 0 {
			m.log.Warn("/dev/log exists and is not a socket; not replacing it", "mode", fi.Mode())
			return nil
		}
		os.Remove(p)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		m.log.Error("/dev/log", "err", err)
		return nil
	}
	conn.SetReadBuffer(1 << 20)
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	}
	os.Chmod(p, 0o666)
	s := &syslog{conn: conn}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); m.serveSyslog(conn) }()
	m.log.Info("/dev/log feeds the log store", "stream", syslogStream)
	return s
}

func (s *syslog) close() {
	s.conn.Close()
	s.wg.Wait()
}

func (m *Manager) serveSyslog(conn *net.UnixConn) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pid := 0
		if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, c := range cms {
				if cred, err := unix.ParseUnixCredentials(&c); err == nil {
					pid = int(cred.Pid)
				}
			}
		}
		for _, msg := range strings.Split(strings.TrimRight(string(buf[:n]), "\n\x00"), "\n") {
			if msg = syslogText(msg); msg != "" {
				m.logs.Append(syslogUnit(pid), syslogStream, msg)
			}
		}
	}
}

// syslogUnit names the sender: its unit (from the cgroup), else its command
// name, else "syslog".
func syslogUnit(pid int) string {
	if pid > 0 {
		if u := unitOfPID(pid); u != "" {
			return u
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
			if c := strings.TrimSpace(string(b)); c != "" && !strings.ContainsAny(c, "/") {
				return c
			}
		}
	}
	return "syslog"
}

// rfc3164 is the "<PRI>Mmm dd hh:mm:ss " head that syslog(3) puts before
// "tag[pid]: message"; the store has its own timestamp.
var rfc3164 = regexp.MustCompile(`^<\d{1,3}>(?:[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d )?`)

// syslogText is the message without priority and timestamp.
func syslogText(s string) string {
	return strings.TrimSpace(rfc3164.ReplaceAllString(s, ""))
}
