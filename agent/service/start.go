package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"corral.io/corral/agent/unit"
)

// Errors a Start can return, wrapped with the unit name, so that the job
// engine can tell a skipped unit from a failed one.
var (
	ErrConditionFailed = errors.New("ExecCondition= failed, unit skipped")
	ErrStartLimit      = errors.New("start request repeated too quickly")
	ErrStartFailed     = errors.New("start failed")
	ErrCanceled        = errors.New("start canceled by stop")
)

// Start starts the unit and returns once it is active as Type= defines it
// (running, exited, or for a oneshot without RemainAfterExit: finished), or
// when the start failed. A failed start with Restart= still returns the
// error; the restart is a separate job requested through RequestRestart.
func (s *Service) Start(ctx context.Context) error {
	s.lock()
	s.inCall = true
	a, err := s.beginStart()
	s.inCall = false
	seq := s.queued
	s.unlock()
	if a != nil {
		err = a.wait(ctx)
		seq = a.seq
	}
	if werr := s.waitDelivered(ctx, seq); err == nil {
		err = werr
	}
	return err
}

func (s *Service) beginStart() (*attempt, error) {
	name := s.u.Name
	st := s.st.SubState
	switch {
	case st == Running || st == Exited || st == Reloading:
		return nil, nil
	case st.starting():
		if s.start == nil {
			s.start = newAttempt()
		}
		return s.start, nil
	case st.stopping():
		return nil, fmt.Errorf("unit %s is stopping, start it again once stopped", name)
	}
	if s.u.Service == nil {
		return nil, fmt.Errorf("unit %s has no [Service] section", name)
	}
	restart := st == AutoRestart || s.restartPending
	s.restartPending = false
	s.cancelTimer()
	if !s.startLimitOK() {
		s.st.Result = StartLimitHit
		s.core("Start request repeated too quickly.")
		s.core("Failed with result '%s'.", StartLimitHit)
		s.core("Failed to start %s.", s.desc())
		s.setState(Failed)
		return nil, fmt.Errorf("unit %s: %w (StartLimitBurst=%d in StartLimitIntervalSec=%s)", name, ErrStartLimit, s.u.StartLimitBurst, s.u.StartLimitInterval)
	}
	if !restart {
		s.st.NRestarts = 0
	}
	s.st.Result = Success
	s.startOK = false
	s.forbidRestart = false
	s.notifyReady = false
	s.notifyReload = false
	s.wdUsec = 0
	s.st.StatusText = ""
	s.st.StatusErrno = 0
	s.invocation = newInvocationID()
	s.st.InvocationID = s.invocation
	a := newAttempt()
	s.start = a
	s.core("Starting %s...", s.desc())
	if err := s.prepare(); err != nil {
		s.core("Failed to set up %s: %v", name, err)
		s.enterSignal(StopSigterm, Resources)
		return a, nil
	}
	s.enterCondition()
	return a, nil
}

// startLimitOK is systemd's ratelimit: at most StartLimitBurst starts in
// every StartLimitIntervalSec window, counted from the window's first start.
func (s *Service) startLimitOK() bool {
	iv, burst := s.u.StartLimitInterval, s.u.StartLimitBurst
	if iv <= 0 || burst <= 0 {
		return true
	}
	now := s.d.Now()
	if len(s.starts) > 0 && now.Sub(s.starts[0]) > iv {
		s.starts = nil
	}
	if len(s.starts) >= burst {
		return false
	}
	s.starts = append(s.starts, now)
	return true
}

func (s *Service) startError() error {
	switch r := s.st.Result; r {
	case Success:
		return fmt.Errorf("unit %s: %w", s.u.Name, ErrCanceled)
	case SkipCondition:
		return fmt.Errorf("unit %s: %w", s.u.Name, ErrConditionFailed)
	default:
		return fmt.Errorf("unit %s: %w with result '%s'", s.u.Name, ErrStartFailed, r)
	}
}

func errNotActive(name string) error {
	return fmt.Errorf("unit %s is not active", name)
}

func newInvocationID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Service) svc() *unit.Service { return s.u.Service }

func (s *Service) desc() string {
	if s.u.Description != "" {
		return s.u.Description
	}
	return s.u.Name
}

func (s *Service) serviceType() unit.ServiceType {
	switch t := s.svc().Type; t {
	case "", unit.Dbus:
		return unit.Simple
	default:
		return t
	}
}

func (s *Service) timeoutStart() time.Duration { return s.svc().TimeoutStartSec }
func (s *Service) timeoutStop() time.Duration  { return s.svc().TimeoutStopSec }

func (s *Service) enterCondition() {
	s.runControl(Condition, "ExecCondition", s.svc().ExecCondition, s.timeoutStart(),
		s.enterStartPre, func(f Result) { s.enterSignal(StopSigterm, f) })
}

func (s *Service) enterStartPre() {
	s.runControl(StartPre, "ExecStartPre", s.svc().ExecStartPre, s.timeoutStart(),
		s.enterStart, func(f Result) { s.enterSignal(StopSigterm, f) })
}

func (s *Service) enterStart() {
	cmds := s.svc().ExecStart
	typ := s.serviceType()
	if len(cmds) == 0 {
		if typ == unit.Oneshot {
			s.enterStartPost()
			return
		}
		s.core("Service has no ExecStart= setting. Refusing.")
		s.enterSignal(StopSigterm, Resources)
		return
	}
	if typ == unit.Forking {
		s.runControl(StartState, "ExecStart", cmds[:1], s.timeoutStart(),
			s.forkingStarted, func(f Result) { s.enterSignal(StopSigterm, f) })
		return
	}
	if typ != unit.Oneshot {
		cmds = cmds[:1]
	}
	s.mainCmd = &cmdRun{kind: "ExecStart", cmds: cmds}
	started, err := s.spawnMain()
	if !started {
		s.enterSignal(StopSigterm, Resources)
		return
	}
	s.armWatchdog()
	switch {
	case typ == unit.Oneshot || typ == unit.Notify || err != nil:
		// For a failed exec (err with a PID), the child's exit with its
		// EXIT_* status follows and fails the start, for simple too.
		s.setState(StartState)
		s.armTimer(s.timeoutStart())
	default: // simple, exec, idle: proc.Start returned after execve
		s.enterStartPost()
	}
}

// forkingStarted runs when a Type=forking start process exited 0: the main
// PID comes from PIDFile=, or is the only process left in the cgroup.
func (s *Service) forkingStarted() {
	if p := s.svc().PIDFile; p != "" {
		s.waitPIDFile(p, s.d.Now().Add(pidFileWait))
		return
	}
	if pid := s.guessMainPID(); pid > 0 {
		s.setMainPID(pid)
	}
	s.enterStartPost()
}

// pidFileWait bounds how long a daemon may take to write its PID file after
// its start process exited; systemd waits with inotify, we poll.
const pidFileWait = 5 * time.Second

func (s *Service) waitPIDFile(path string, until time.Time) {
	pid, err := readPIDFile(path)
	if err == nil {
		s.setMainPID(pid)
		s.enterStartPost()
		return
	}
	if s.d.Now().After(until) {
		s.core("PID file %s not readable (yet?) after start: %v", path, err)
		s.enterSignal(StopSigterm, Protocol)
		return
	}
	s.setState(StartState) // keeps the start timer armed
	s.after(50*time.Millisecond, func() {
		if s.st.SubState == StartState && s.st.ControlPID == 0 && s.st.MainPID == 0 {
			s.waitPIDFile(path, until)
		}
	})
}

func (s *Service) guessMainPID() int {
	if s.d.Cgroups == nil || s.d.Cgroup == "" {
		return 0
	}
	pids, err := s.d.Cgroups.Pids(s.d.Cgroup)
	if err != nil {
		return 0
	}
	var cand []int
	for _, p := range pids {
		if p != s.st.ControlPID {
			cand = append(cand, p)
		}
	}
	if len(cand) == 1 {
		return cand[0]
	}
	return 0
}

func (s *Service) enterStartPost() {
	s.runControl(StartPost, "ExecStartPost", s.svc().ExecStartPost, s.timeoutStart(),
		func() { s.enterRunning(Success) }, func(f Result) { s.enterStop(f) })
}

// enterRunning is systemd's service_enter_running: the unit is active if its
// main process lives, exited if RemainAfterExit=, and stops otherwise.
func (s *Service) enterRunning(f Result) {
	if s.st.Result == Success {
		s.st.Result = f
	}
	s.ctlCmd = nil
	s.st.ControlPID = 0
	// Simple services go from dead to running without a start state.
	wasStarting := s.st.SubState.starting() || (s.start != nil && !s.startOK)
	ok := s.st.Result == Success
	if wasStarting && ok {
		s.startOK = true
		verb := "Started"
		if s.serviceType() == unit.Oneshot {
			verb = "Finished"
		}
		s.core("%s %s.", verb, s.desc())
	}
	switch {
	case s.st.MainPID != 0 || s.cgroupAliveWithoutMain():
		s.setState(Running)
		s.cancelTimer()
		if d := s.svc().RuntimeMaxSec; d > 0 && wasStarting {
			s.armTimer(d)
		}
		if s.st.MainPID == 0 {
			s.pollCgroupWhileRunning()
		}
	case !ok:
		s.enterSignal(StopSigterm, f)
	case s.svc().RemainAfterExit:
		s.setState(Exited)
	default:
		s.enterStop(Success)
	}
}

// cgroupAliveWithoutMain covers Type=forking daemons whose main PID could not
// be determined: like systemd, the unit is up while its cgroup is populated.
func (s *Service) cgroupAliveWithoutMain() bool {
	if s.serviceType() != unit.Forking || s.d.Cgroups == nil || s.d.Cgroup == "" {
		return false
	}
	pids, err := s.d.Cgroups.Pids(s.d.Cgroup)
	return err == nil && len(pids) > 0
}

func (s *Service) pollCgroupWhileRunning() {
	s.after(time.Second, func() {
		if s.st.SubState != Running || s.st.MainPID != 0 {
			return
		}
		if s.cgroupAliveWithoutMain() {
			s.pollCgroupWhileRunning()
			return
		}
		s.enterRunning(Success)
	})
}
