package sysinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for Config fields left zero.
const (
	DefaultStopTimeout = 90 * time.Second
	DefaultKillTimeout = 5 * time.Second
	DefaultMaxRecords  = 4096
)

// Config is what `corral init` was asked to do. The fields that describe the
// node (Root, UnitDirs, CgroupRoot, LogLevel) are not used by the supervisor
// itself; they are passed through to the core.
type Config struct {
	Root       string   // --root of the core
	UnitDirs   []string // --unit-dir of the core, in order
	CgroupRoot string   // --cgroup-root of the core, "" = core default
	LogLevel   string   // --log-level of the core, "" = core default
	Target     string   // --default-target of the core, "" = core default

	Agent  string // path of the corral-agent binary
	Helper string // path of the corral binary, passed as --helper (the exec trampoline)

	StopTimeout time.Duration // how long the core may take to stop all units on SIGTERM
	KillTimeout time.Duration // how long remaining processes get between SIGTERM and SIGKILL

	Log        *slog.Logger // nil = slog.Default()
	Output     *os.File     // the core's stdout and stderr; nil = os.Stderr
	Procfs     string       // "" = /proc
	MaxRecords int          // bound of the exit-record table; 0 = DefaultMaxRecords

	SystemUnits string // --system-units of the core ("yes" under PID 1), "" = core default

	PID1     bool          // signals are machine actions (pid1Signals); no subreaper needed
	Requests <-chan Action // other sources of actions (the power button); nil = none
	Adopt    *Handoff      // a core left running by the sysinit that exec'd us
	OnFatal  Action        // what Serve returns after a recovered panic (PID 1: reboot)
}

// AgentArgs is the argv (without argv[0]) the core is started with. These
// flag names are the contract with cmd/corral-agent.
func (c Config) AgentArgs() []string {
	a := []string{"--root", c.Root}
	for _, d := range c.UnitDirs {
		a = append(a, "--unit-dir", d)
	}
	if c.CgroupRoot != "" {
		a = append(a, "--cgroup-root", c.CgroupRoot)
	}
	if c.Target != "" {
		a = append(a, "--default-target", c.Target)
	}
	if c.LogLevel != "" {
		a = append(a, "--log-level", c.LogLevel)
	}
	if c.Helper != "" {
		a = append(a, "--helper", c.Helper)
	}
	if c.SystemUnits != "" {
		a = append(a, "--system-units", c.SystemUnits)
	}
	return a
}

// Supervisor keeps the core running and reaps everything that re-parents to
// it. All of its state is touched by the single goroutine running Run, so
// it needs no locks and a panic anywhere is caught by Run's recover.
type Supervisor struct {
	cfg     Config
	log     *slog.Logger
	table   *Table
	self    int
	chld    chan os.Signal // SIGCHLD only, so a burst of exits cannot crowd out SIGTERM
	ctl     chan os.Signal // SIGTERM, SIGINT, SIGHUP
	devnull *os.File

	agentPID   int
	agentStart time.Time
	bo         backoff
	restart    *time.Timer // pending restart of the core, or nil
	stopping   bool
	out        *stream // exit records to the current core (see stream), or nil
}

// New returns a supervisor for cfg with defaults filled in.
func New(cfg Config) *Supervisor {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.KillTimeout <= 0 {
		cfg.KillTimeout = DefaultKillTimeout
	}
	if cfg.Procfs == "" {
		cfg.Procfs = "/proc"
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Supervisor{cfg: cfg, log: log, table: NewTable(cfg.MaxRecords), self: os.Getpid()}
}

// Records is the table of exits of processes reaped while they were not the
// core; every core the supervisor starts receives it over its exit-record
// stream (see stream).
func (s *Supervisor) Records() *Table { return s.table }

// errPanic is returned by Run after it recovered from a panic and shut down.
var errPanic = errors.New("sysinit: supervisor panicked; shut down")

// Action is how a supervisor's run ended: what the caller does next.
type Action int

const (
	ActionStop     Action = iota // not PID 1: everything stopped, exit
	ActionPoweroff               // everything stopped; reboot(2) RB_POWER_OFF
	ActionReboot                 // everything stopped; reboot(2) RB_AUTOBOOT
	ActionHalt                   // everything stopped; reboot(2) RB_HALT_SYSTEM
	ActionReexec                 // the core is still running: exec a new sysinit, Handoff() to it
)

func (a Action) String() string {
	switch a {
	case ActionPoweroff:
		return "poweroff"
	case ActionReboot:
		return "reboot"
	case ActionHalt:
		return "halt"
	case ActionReexec:
		return "reexec"
	}
	return "stop"
}

// Signals PID 1 answers (see docs/PID1.md). SIGRTMIN+3..5 are systemd's
// halt/poweroff/reboot requests, honoured so that tools written for
// systemd (and `kill -RTMIN+4 1`) work; glibc's SIGRTMIN is 34.
const (
	sigRTHalt     = syscall.Signal(34 + 3)
	sigRTPoweroff = syscall.Signal(34 + 4)
	sigRTReboot   = syscall.Signal(34 + 5)
)

// PID1Signals maps each signal to what PID 1 does on it. Outside PID 1,
// SIGTERM and SIGINT both mean "stop" and nothing else is handled.
var pid1Signals = map[syscall.Signal]Action{
	unix.SIGTERM:  ActionReexec,
	unix.SIGINT:   ActionReboot, // ctrl-alt-del, once reboot(RB_DISABLE_CAD) is set
	unix.SIGPWR:   ActionPoweroff,
	unix.SIGUSR2:  ActionHalt,
	sigRTHalt:     ActionHalt,
	sigRTPoweroff: ActionPoweroff,
	sigRTReboot:   ActionReboot,
}

// SignalFor is the signal that asks PID 1 for a, the contract of the
// poweroff/reboot/halt multi-call names and of the core's Shutdown API.
func SignalFor(a Action) syscall.Signal {
	switch a {
	case ActionReboot:
		return unix.SIGINT
	case ActionHalt:
		return unix.SIGUSR2
	case ActionReexec:
		return unix.SIGTERM
	}
	return unix.SIGPWR
}

// Run starts the core and supervises it until SIGTERM or SIGINT arrives or
// ctx is cancelled; then it stops the core, kills and reaps every remaining
// descendant, and returns nil. It must be called from one goroutine only,
// once.
func (s *Supervisor) Run(ctx context.Context) error {
	_, err := s.Serve(ctx)
	return err
}

// Handoff is what a re-exec'd sysinit needs to adopt the running core.
// Valid after Serve returned ActionReexec.
func (s *Supervisor) Handoff() Handoff {
	h := Handoff{AgentPID: s.agentPID, AgentStart: s.agentStart, Records: s.table.Records(), Dropped: s.table.Dropped()}
	if s.out != nil {
		h.Stream = s.out.fd
	}
	return h
}

// Serve is Run that also reports how it ended. Outside PID 1 that is always
// ActionStop. As PID 1 (Config.PID1) the signals of pid1Signals and
// Config.Requests end it: a machine action after everything was stopped,
// or ActionReexec with the core left running. On a recovered panic it
// shuts down and returns Config.OnFatal with an error.
func (s *Supervisor) Serve(ctx context.Context) (act Action, err error) {
	if !s.cfg.PID1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return ActionStop, fmt.Errorf("sysinit: set child subreaper: %w", err)
		}
	}
	dn, err := os.Open(os.DevNull)
	if err != nil {
		s.log.Error("cannot open /dev/null; the core gets no stdin", "err", err)
	} else {
		defer dn.Close()
	}
	s.devnull = dn
	s.chld = make(chan os.Signal, 1) // one pending SIGCHLD is enough: reap drains all
	s.ctl = make(chan os.Signal, 8)
	signal.Notify(s.chld, unix.SIGCHLD)
	if s.cfg.PID1 {
		for sig := range pid1Signals {
			signal.Notify(s.ctl, sig)
		}
		signal.Notify(s.ctl, unix.SIGHUP)
	} else {
		signal.Notify(s.ctl, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	}
	defer signal.Stop(s.chld)
	defer signal.Stop(s.ctl)

	defer func() {
		if r := recover(); r != nil {
			s.log.Error("supervisor panicked; shutting down", "panic", r, "stack", string(debug.Stack()))
			s.safeShutdown()
			act, err = s.cfg.OnFatal, errPanic
		}
	}()

	s.log.Info("supervisor started", "pid", s.self, "agent", s.cfg.Agent, "pid1", s.cfg.PID1)
	if !s.adopt() {
		s.startAgent()
	}
	s.reap() // exits that happened while a previous sysinit exec'd us
	for {
		var restartC <-chan time.Time
		if s.restart != nil {
			restartC = s.restart.C
		}
		select {
		case <-ctx.Done():
			s.log.Info("context done; shutting down")
			s.shutdown()
			return ActionStop, nil
		case <-s.chld:
			s.reap()
		case a := <-s.cfg.Requests:
			if a == ActionReexec {
				return a, nil
			}
			s.log.Info("shutting down", "action", a)
			s.shutdown()
			return a, nil
		case sig := <-s.ctl:
			sn := sig.(syscall.Signal)
			if sn == unix.SIGHUP {
				s.forward(unix.SIGHUP)
				continue
			}
			a := ActionStop
			if s.cfg.PID1 {
				a = pid1Signals[sn]
			}
			if a == ActionReexec {
				s.log.Info("re-executing; the core keeps running", "signal", unix.SignalName(sn), "core", s.agentPID)
				return a, nil
			}
			s.log.Info("shutting down", "signal", unix.SignalName(sn), "action", a)
			s.shutdown()
			return a, nil
		case <-restartC:
			s.restart = nil
			s.startAgent()
		}
	}
}

// adopt takes over the core a previous sysinit left running, if it is still
// our child; it reports whether there is one.
func (s *Supervisor) adopt() bool {
	h := s.cfg.Adopt
	if h == nil {
		return false
	}
	for _, r := range h.Records {
		s.table.Add(r)
	}
	if h.AgentPID <= 0 {
		return false
	}
	st, err := readStat(s.cfg.Procfs, h.AgentPID)
	if err != nil || st.PPID != s.self {
		s.log.Warn("handed-over core is gone; starting a new one", "pid", h.AgentPID, "err", err)
		return false
	}
	s.agentPID, s.agentStart = h.AgentPID, h.AgentStart
	if h.Stream > 0 {
		s.out = &stream{fd: h.Stream}
	}
	if s.agentStart.IsZero() {
		s.agentStart = time.Now()
	}
	s.log.Info("adopted core", "pid", h.AgentPID, "records", len(h.Records))
	return true
}

// startAgent forks and execs the core. It is not an os/exec child: nothing
// but the reap loop may wait for it.
func (s *Supervisor) startAgent() {
	argv := append([]string{s.cfg.Agent}, s.cfg.AgentArgs()...)
	out := s.cfg.Output.Fd()
	in := out
	if s.devnull != nil {
		in = s.devnull.Fd()
	}
	files := []uintptr{in, out, out}
	s.out.close()
	s.out = nil
	if rd, st, err := newStream(s.cfg.MaxRecords); err != nil {
		s.log.Error("the core gets no exit records", "err", err)
	} else {
		defer unix.Close(rd)
		if n := st.send(s.table.Records()); n > 0 {
			s.log.Warn("exit records did not fit the pipe", "dropped", n)
		}
		s.out = st
		files = append(files, uintptr(rd))
		argv = append(argv, "--exit-records-fd", strconv.Itoa(ExitRecordsFD))
	}
	pid, err := syscall.ForkExec(s.cfg.Agent, argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: files,
		// Its own process group: a ^C on the terminal of `make run` reaches
		// only the supervisor, which then stops the core in order.
		Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		s.log.Error("cannot start core", "path", s.cfg.Agent, "err", err)
		s.out.close()
		s.out = nil
		s.scheduleRestart(max(s.bo.next(0), backoffMin))
		return
	}
	s.agentPID, s.agentStart = pid, time.Now()
	s.log.Info("core started", "pid", pid)
}

func (s *Supervisor) scheduleRestart(d time.Duration) {
	if s.restart != nil {
		s.restart.Stop()
	}
	s.log.Info("restarting core after backoff", "delay", d)
	s.restart = time.NewTimer(d)
}

// reap collects every exited child: the core's exit triggers a restart,
// any other process is recorded.
func (s *Supervisor) reap() {
	reapAll(s.cfg.Procfs, func(r Record) {
		if r.PID == s.agentPID && s.agentPID != 0 {
			s.agentExited(r)
			return
		}
		s.table.Add(r)
		s.out.send([]Record{r})
		s.log.Info("reaped orphan", "pid", r.PID, "start_time", r.StartTime, "status", Describe(r.Status))
	})
}

func (s *Supervisor) agentExited(r Record) {
	up := r.Time.Sub(s.agentStart)
	s.agentPID = 0
	s.out.close()
	s.out = nil
	if s.stopping {
		s.log.Info("core exited", "pid", r.PID, "status", Describe(r.Status), "uptime", up)
		return
	}
	s.log.Warn("core exited", "pid", r.PID, "status", Describe(r.Status), "uptime", up)
	if d := s.bo.next(up); d > 0 {
		s.scheduleRestart(d)
		return
	}
	s.startAgent()
}

func (s *Supervisor) forward(sig syscall.Signal) {
	if s.agentPID == 0 {
		s.log.Warn("no core running; signal dropped", "signal", unix.SignalName(sig))
		return
	}
	if err := unix.Kill(s.agentPID, sig); err != nil {
		s.log.Warn("forward signal to core", "pid", s.agentPID, "signal", unix.SignalName(sig), "err", err)
	}
}

// safeShutdown runs shutdown and, should that panic too, falls back to
// SIGKILLing whatever is left.
func (s *Supervisor) safeShutdown() {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("shutdown panicked; killing everything", "panic", r)
			if t, err := processTable(s.cfg.Procfs); err == nil {
				for _, pid := range descendants(t, s.self) {
					unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
	}()
	s.shutdown()
}

// shutdown stops the core (which stops all units), then kills and reaps
// every remaining descendant.
func (s *Supervisor) shutdown() {
	s.stopping = true
	if s.restart != nil {
		s.restart.Stop()
		s.restart = nil
	}
	if s.agentPID != 0 {
		pid := s.agentPID
		s.log.Info("stopping core", "pid", pid, "timeout", s.cfg.StopTimeout)
		unix.Kill(pid, unix.SIGTERM)
		if !s.waitFor(s.cfg.StopTimeout, func() bool { return s.agentPID == 0 }) {
			s.log.Warn("core did not stop in time; killing it", "pid", pid)
			unix.Kill(pid, unix.SIGKILL)
			s.waitFor(s.cfg.KillTimeout, func() bool { return s.agentPID == 0 })
		}
	}
	s.killDescendants()
	s.reap()
	s.log.Info("supervisor stopped", "reaped_records", len(s.table.Records()))
}

func (s *Supervisor) descendants() []int {
	t, err := processTable(s.cfg.Procfs)
	if err != nil {
		s.log.Error("scan processes", "procfs", s.cfg.Procfs, "err", err)
		return nil
	}
	return descendants(t, s.self)
}

// killDescendants sends SIGTERM (and SIGCONT, so stopped processes see it)
// to every descendant, then SIGKILL to those still there after KillTimeout.
func (s *Supervisor) killDescendants() {
	pids := s.descendants()
	if len(pids) == 0 {
		return
	}
	s.log.Info("terminating remaining processes", "count", len(pids))
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGTERM)
		unix.Kill(pid, unix.SIGCONT)
	}
	if s.waitFor(s.cfg.KillTimeout, func() bool { return len(s.descendants()) == 0 }) {
		return
	}
	s.log.Warn("killing remaining processes", "count", len(s.descendants()))
	gone := s.waitFor(s.cfg.KillTimeout, func() bool {
		left := s.descendants()
		for _, pid := range left {
			unix.Kill(pid, unix.SIGKILL) // again each round: catches late forks
		}
		return len(left) == 0
	})
	if !gone {
		s.log.Error("processes survived SIGKILL", "pids", s.descendants())
	}
}

// waitFor reaps children until cond holds or d passes, and reports whether
// cond held. Other signals stay unread: we are already shutting down.
func (s *Supervisor) waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-s.chld:
			s.reap()
		case <-tick.C:
			s.reap()
		case <-deadline.C:
			s.reap()
			return cond()
		}
	}
}

// KillAll is the end of a PID 1 that has no supervisor loop to stop things
// in order (a fatal error in early boot or around a re-exec): SIGTERM to
// every process but us, SIGKILL to what is left after cfg.KillTimeout.
func KillAll(cfg Config) {
	s := New(cfg)
	s.killDescendants()
	s.reap()
}
