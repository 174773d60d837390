package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/sysinit"
)

// Environment knobs of PID 1. The kernel passes unknown key=value words of
// its command line to init as environment, so both can also be set there.
const (
	// envConsole overrides the console device; "-" keeps the inherited
	// stdin/stdout/stderr (the PID-namespace test captures them).
	envConsole = "CORRAL_CONSOLE"
	// envCmdline replaces /proc/cmdline (the test cannot change the host's).
	envCmdline = "CORRAL_CMDLINE"
)

// machine is PID 1: early boot, then the supervisor, then the end of the
// machine. reboot is reboot(2); it is a field so that what the end does is
// visible in one place.
type machine struct {
	log     *slog.Logger
	cmdline sysinit.Cmdline
	onFatal sysinit.Action
	killCfg sysinit.Config
	reboot  func(cmd int) error
}

// pid1 runs the machine's init. It never returns: exiting PID 1 panics the
// kernel. Every path, including a panic, ends in finish (Talos's handle).
func pid1(_ *slog.Logger, args []string) int {
	var hugeErr error
	if !sysinit.HugePagesDisabled() {
		// The runtime mapped its first heap pages before main, as huge
		// pages where THP is "always"; a fresh image of ourselves starts
		// without them (the setting survives exec). /proc may not be
		// mounted yet, hence argv[0]. If exec fails, boot goes on.
		hugeErr = sysinit.NoHugePages()
		if hugeErr == nil && len(args) > 0 && filepath.IsAbs(args[0]) {
			hugeErr = syscall.Exec(args[0], args, os.Environ())
		}
	}
	m := &machine{
		log:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
		onFatal: sysinit.ActionReboot,
		reboot:  unix.Reboot,
	}
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("PID 1 panicked", "panic", r, "stack", string(debug.Stack()))
			sysinit.KillAll(m.killCfg)
			m.finish(m.onFatal)
		}
	}()
	m.finish(m.run(args, hugeErr))
	return 0 // not reached
}

// run boots (unless we were re-exec'd) and supervises the core until a
// machine action ends it.
func (m *machine) run(args []string, hugeErr error) sysinit.Action {
	// One P and a tighter GC: PID 1 mostly sleeps, and every MiB it holds
	// is held for the machine's whole life.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	debug.SetGCPercent(20)

	handoff, reexeced := os.LookupEnv(sysinit.HandoffEnv)
	os.Unsetenv(sysinit.HandoffEnv)
	if !reexeced {
		m.boot()
	} else {
		// Mounts and console are already there: they outlive exec.
		m.cmdline = sysinit.ParseCmdline(readCmdline())
		m.log = m.logger(nil)
		if os.Getenv(envConsole) == "" {
			if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
				m.log = m.logger(k)
			}
		}
	}
	if hugeErr != nil {
		m.log.Warn("transparent huge pages stay on for PID 1", "err", hugeErr)
	}
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if m.cmdline.OnFatal != "" {
		m.onFatal = map[string]sysinit.Action{"poweroff": sysinit.ActionPoweroff, "halt": sysinit.ActionHalt, "reboot": sysinit.ActionReboot}[m.cmdline.OnFatal]
	}

	self := selfPath()
	cfg := sysinit.Config{
		Root:        "/",
		Agent:       filepath.Join(filepath.Dir(self), agentName),
		Helper:      self,
		SystemUnits: "yes",
		Target:      m.cmdline.Target(),
		PID1:        true,
		OnFatal:     m.onFatal,
		Log:         m.log.With("component", "sysinit"),
	}
	if m.cmdline.Debug {
		cfg.LogLevel = "debug"
	}
	m.killCfg = sysinit.Config{Log: cfg.Log, KillTimeout: sysinit.DefaultKillTimeout}
	if reexeced {
		h, err := sysinit.ImportHandoff(handoff)
		if err != nil {
			m.log.Error("re-exec handoff unreadable; starting a new core", "err", err)
		}
		cfg.Adopt = &h
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := make(chan sysinit.Action, 1)
	cfg.Requests = req
	go m.powerButton(ctx, req)
	go m.memoryReport(ctx)
	// Boot's garbage and the binary's boot-only pages, again once PID 1
	// has settled (sysinit.Trim).
	go sysinit.TrimAfter(ctx, func() { m.log.Debug("memory trimmed", "after", "idle") },
		6*time.Second, 30*time.Second, 2*time.Minute)

	m.log.Info("corral: starting core", "agent", cfg.Agent, "target", cfg.Target)
	for {
		sup := sysinit.New(cfg)
		act, err := sup.Serve(ctx)
		if err != nil {
			m.log.Error("supervisor failed", "err", err, "action", act)
		}
		if act != sysinit.ActionReexec {
			return act
		}
		h := sup.Handoff()
		err = m.reexec(args, h)
		m.log.Error("re-exec failed; carrying on", "err", err)
		cfg.Adopt = &h
	}
}

// boot is early boot: the mount table, the console, the command line, and
// the few things a machine needs before its first service. Nothing here is
// fatal: each error is logged (to the console and kmsg) and boot goes on,
// since a machine with a broken /dev/shm is better than no machine. Only a
// root that cannot be mounted stops it, and that is the kernel's doing.
func (m *machine) boot() {
	type failure struct {
		what string
		err  error
	}
	var early []failure
	mnt := sysinit.RealMounter{}
	sysinit.RunTable(sysinit.EarlyMounts(mnt), func(c sysinit.Creator, err error) {
		early = append(early, failure{c.String(), err})
	})

	con := os.Getenv(envConsole)
	var kmsg *os.File
	if con == "" {
		con = "/dev/console"
		if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			kmsg = f
		} else {
			early = append(early, failure{"open /dev/kmsg", err})
		}
	}
	if con != "-" {
		if err := sysinit.SetupConsole(con); err != nil {
			early = append(early, failure{"console", err})
		}
	}
	m.cmdline = sysinit.ParseCmdline(readCmdline())
	if kmsg != nil {
		m.log = m.logger(kmsg)
	} else {
		m.log = m.logger(nil)
	}
	m.log.Info("corral: PID 1 booting", "cmdline", m.cmdline)
	for _, f := range early {
		m.log.Error("early boot", "step", f.what, "err", f.err)
	}

	cg, mode, err := sysinit.CgroupTable(mnt, m.cmdline)
	if err != nil {
		m.log.Error("early boot: cgroups", "err", err)
	}
	m.log.Info("cgroups", "version", int(mode))
	var fstab []sysinit.FstabEntry
	if b, err := os.ReadFile("/etc/fstab"); err == nil {
		fstab = sysinit.ParseFstab(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		m.log.Error("early boot: /etc/fstab", "err", err)
	}
	table := append(cg, sysinit.RootRemount(mnt, fstab),
		sysinit.Step{Name: "hostname from /etc/hostname", Fn: func() error {
			name, err := sysinit.SetHostname("/etc/hostname")
			if err == nil {
				m.log.Info("hostname set", "name", name)
			}
			return err
		}},
		sysinit.Step{Name: "loopback up", Fn: sysinit.LoopbackUp},
		// ctrl-alt-del becomes SIGINT to us instead of an immediate reboot.
		sysinit.Step{Name: "reboot(RB_DISABLE_CAD)", Fn: func() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF) }},
	)
	sysinit.RunTable(table, func(c sysinit.Creator, err error) {
		m.log.Error("early boot", "step", c.String(), "err", err)
	})
}

// logger is the boot logger at the level the command line asks for.
func (m *machine) logger(kmsg *os.File) *slog.Logger {
	level := slog.LevelInfo
	if m.cmdline.Debug {
		level = slog.LevelDebug
	}
	if kmsg == nil {
		return sysinit.NewBootLogger(os.Stderr, nil, level)
	}
	return sysinit.NewBootLogger(os.Stderr, kmsg, level)
}

func readCmdline() string {
	if v, ok := os.LookupEnv(envCmdline); ok {
		return v
	}
	b, _ := os.ReadFile("/proc/cmdline")
	return string(b)
}

// powerButton loads the ACPI button and evdev drivers if they are modules,
// then turns power-button presses into poweroff requests.
func (m *machine) powerButton(ctx context.Context, req chan<- sysinit.Action) {
	log := m.log.With("component", "powerbutton")
	dir := "/lib/modules/" + sysinit.KernelRelease()
	if err := sysinit.LoadModules(log, dir, "button", "evdev"); err != nil {
		log.Warn("loading power button drivers", "err", err)
	}
	m.trim("modules loaded") // modules.dep was the largest thing early boot read
	sysinit.WatchPowerButton(ctx, log, 5*time.Second, func() {
		select {
		case req <- sysinit.ActionPoweroff:
		default: // one is already pending
		}
	})
}

// memoryReport logs the Go runtime's view of PID 1's memory on SIGUSR1,
// for finding out what the anonymous part of its RSS is (docs/PID1.md).
func (m *machine) memoryReport(ctx context.Context) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		m.log.Info("memory", "heap_alloc", ms.HeapAlloc, "heap_inuse", ms.HeapInuse, "heap_idle", ms.HeapIdle,
			"heap_released", ms.HeapReleased, "stack_inuse", ms.StackInuse, "sys", ms.Sys, "num_gc", ms.NumGC,
			"goroutines", runtime.NumGoroutine())
	}
}

// trim runs sysinit.Trim and says so at debug level (the PID-1 test waits
// for the line before it measures).
func (m *machine) trim(why string) {
	m.log.Debug("memory trimmed", "after", why)
	sysinit.Trim()
}

// selfPath is the binary to re-exec: the file on disk when it was replaced
// (an upgrade: /proc/self/exe then reads "... (deleted)"), else ourselves.
func selfPath() string {
	p, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "/proc/self/exe"
	}
	if d, ok := strings.CutSuffix(p, " (deleted)"); ok {
		if _, err := os.Stat(d); err == nil {
			return d
		}
		return "/proc/self/exe"
	}
	return p
}

// reexec replaces this PID 1 with a fresh copy of the binary; the core and
// the exit records travel through sysinit.HandoffEnv. It returns only on
// failure.
func (m *machine) reexec(args []string, h sysinit.Handoff) error {
	env, fd, err := h.Export()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	path := selfPath()
	m.log.Info("corral: re-executing", "path", path, "core", h.AgentPID, "records", len(h.Records))
	envv := append(os.Environ(), env)
	return syscall.Exec(path, args, envv)
}

// finish is the end of the machine once every process is stopped: sync,
// unmount, and reboot(2). It never returns.
func (m *machine) finish(a sysinit.Action) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("finish panicked", "panic", r)
			unix.Sync()
			m.reboot(sysinit.RebootCmd(a))
			for {
				time.Sleep(time.Hour)
			}
		}
	}()
	if a == sysinit.ActionStop || a == sysinit.ActionReexec {
		a = m.onFatal // cannot happen as PID 1; end the machine anyway
	}
	sysinit.Finish(m.log)
	m.log.Info("corral: " + a.String())
	err := m.reboot(sysinit.RebootCmd(a))
	m.log.Error("reboot(2) failed; halting", "action", a, "err", err)
	m.reboot(unix.LINUX_REBOOT_CMD_HALT)
	for {
		time.Sleep(time.Hour)
	}
}
