package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"corral.io/corral/agent/unit"
)

// Stop stops the unit: ExecStop=, KillSignal= per KillMode=, SIGKILL after
// TimeoutStopSec=, ExecStopPost=. A stopped unit is not restarted. It returns
// once the unit is inactive or failed; ending failed is not an error.
func (s *Service) Stop(ctx context.Context) error {
	s.lock()
	s.inCall = true
	var a *attempt
	switch st := s.st.SubState; {
	case st == Dead || st == Failed:
	case st == AutoRestart:
		// Either a user stop, or the stop half of the restart job that
		// RequestRestart asked for: like systemd, go quietly to dead and
		// let a following Start count as a restart (restartPending).
		s.forbidRestart = true
		s.cancelTimer()
		s.cleanup(false) // RuntimeDirectoryPreserve=restart kept it for a restart
		s.setState(Dead)
	case st.stopping():
		s.forbidRestart = true
		if s.stop == nil {
			s.stop = newAttempt()
		}
		a = s.stop
	default:
		s.forbidRestart = true
		a = newAttempt()
		s.stop = a
		s.core("Stopping %s...", s.desc())
		if st == Running || st == Exited {
			s.enterStop(Success)
		} else {
			s.enterSignal(StopSigterm, Success)
		}
	}
	s.inCall = false
	seq := s.queued
	s.unlock()
	var err error
	if a != nil {
		err = a.wait(ctx)
		seq = a.seq
	}
	if werr := s.waitDelivered(ctx, seq); err == nil {
		err = werr
	}
	return err
}

func (s *Service) enterStop(f Result) {
	if s.st.Result == Success {
		s.st.Result = f
	}
	s.runControl(StopState, "ExecStop", s.svc().ExecStop, s.timeoutStop(),
		func() { s.enterSignal(StopSigterm, Success) }, func(f Result) { s.enterSignal(StopSigterm, f) })
}

func (s *Service) enterStopPost(f Result) {
	if s.st.Result == Success {
		s.st.Result = f
	}
	s.runControl(StopPost, "ExecStopPost", s.svc().ExecStopPost, s.timeoutStop(),
		func() { s.enterSignal(FinalSigterm, Success) }, func(f Result) { s.enterSignal(FinalSigterm, f) })
}

func (s *Service) killMode() unit.KillMode {
	if m := s.svc().KillMode; m != "" {
		return m
	}
	return unit.KillControlGroup
}

func sigOr(v int, def syscall.Signal) syscall.Signal {
	if v > 0 {
		return syscall.Signal(v)
	}
	return def
}

// enterSignal is systemd's service_enter_signal: signal what is left and wait
// for it, or move on at once when nothing is left.
func (s *Service) enterSignal(st SubState, f Result) {
	if s.st.Result == Success {
		s.st.Result = f
	}
	svc := s.svc()
	var sig syscall.Signal
	switch st {
	case StopWatchdog:
		sig = syscall.SIGABRT
	case StopSigterm, FinalSigterm:
		sig = sigOr(svc.KillSignal, syscall.SIGTERM)
	default:
		sig = sigOr(svc.FinalKillSignal, syscall.SIGKILL)
	}
	if s.killProcs(sig, st == StopSigterm || st == FinalSigterm) {
		s.setState(st)
		tmo := s.timeoutStop()
		if st == StopWatchdog && svc.TimeoutAbortSec > 0 {
			tmo = svc.TimeoutAbortSec
		}
		s.armTimer(tmo)
		s.pollKill()
		return
	}
	s.afterKill(st)
}

// afterKill moves on from a kill state once nothing is left to wait for.
func (s *Service) afterKill(st SubState) {
	sendKill := s.svc().SendSIGKILL
	switch {
	case (st == StopWatchdog || st == StopSigterm) && sendKill:
		s.enterSignal(StopSigkill, Success)
	case st == StopWatchdog || st == StopSigterm || st == StopSigkill:
		s.enterStopPost(Success)
	case st == FinalSigterm && sendKill:
		s.enterSignal(FinalSigkill, Success)
	default:
		s.enterDead(Success, true)
	}
}

// killProcs signals the unit's processes per KillMode= and reports whether
// there is anything to wait for.
func (s *Service) killProcs(sig syscall.Signal, term bool) bool {
	mode := s.killMode()
	if mode == unit.KillNone {
		return false
	}
	wait := false
	send := func(pid int) {
		if pid <= 0 {
			return
		}
		if sig == syscall.SIGKILL {
			s.core("Killing process %d (%s) with signal SIG%s.", pid, procName(pid), sigName(sig))
		}
		if err := s.kill(pid, sig); err == nil {
			wait = true
		}
		if term && s.svc().SendSIGHUP {
			_ = s.kill(pid, syscall.SIGHUP)
		}
		if sig != syscall.SIGKILL && sig != syscall.SIGCONT {
			_ = s.kill(pid, syscall.SIGCONT)
		}
	}
	send(s.st.MainPID)
	send(s.st.ControlPID)
	if s.st.MainPID != 0 || s.st.ControlPID != 0 {
		wait = true
	}
	if s.killsCgroup(sig) {
		if pids, err := s.d.Cgroups.Pids(s.d.Cgroup); err == nil && len(pids) > 0 {
			if err := s.d.Cgroups.Kill(s.d.Cgroup, sig); err != nil {
				s.log.Warn("cgroup kill", "cgroup", s.d.Cgroup, "signal", sig, "err", err)
			}
			if sig != syscall.SIGKILL {
				_ = s.d.Cgroups.Kill(s.d.Cgroup, syscall.SIGCONT)
			}
			wait = true
		}
	}
	return wait
}

func (s *Service) killsCgroup(sig syscall.Signal) bool {
	if s.d.Cgroups == nil || s.d.Cgroup == "" {
		return false
	}
	mode := s.killMode()
	return mode == unit.KillControlGroup || (mode == unit.KillMixed && sig == syscall.SIGKILL)
}

func isKillState(st SubState) bool {
	switch st {
	case StopWatchdog, StopSigterm, StopSigkill, FinalSigterm, FinalSigkill:
		return true
	}
	return false
}

// checkKillDone moves on from a kill state when main, control and (for
// KillMode=control-group) the whole cgroup are gone.
func (s *Service) checkKillDone() {
	st := s.st.SubState
	if !isKillState(st) || s.st.MainPID != 0 || s.st.ControlPID != 0 {
		return
	}
	if s.killsCgroup(syscall.SIGKILL) && s.killMode() == unit.KillControlGroup {
		if pids, err := s.d.Cgroups.Pids(s.d.Cgroup); err == nil && len(pids) > 0 {
			return
		}
	}
	switch st {
	case StopWatchdog, StopSigterm, StopSigkill:
		s.enterStopPost(Success)
	default:
		s.enterDead(Success, true)
	}
}

// pollKill re-checks a kill state: processes of the cgroup that are not our
// children give no exit event, so the cgroup is polled until empty.
func (s *Service) pollKill() {
	s.after(20*time.Millisecond, func() {
		if !isKillState(s.st.SubState) {
			return
		}
		st := s.st.SubState
		s.checkKillDone()
		if s.st.SubState == st {
			s.pollKill()
		}
	})
}

// enterDead ends a run: dead or failed, or auto-restart when Restart= says so.
func (s *Service) enterDead(f Result, allowRestart bool) {
	if s.st.Result == Success {
		s.st.Result = f
	}
	s.ctlCmd = nil
	s.mainCmd = nil
	restart := allowRestart && s.shouldRestart()
	end := Dead
	switch r := s.st.Result; r {
	case Success:
		if s.stop != nil {
			s.core("Stopped %s.", s.desc())
		} else {
			s.core("Deactivated successfully.")
		}
	case SkipCondition:
		s.core("Skipped due to '%s'.", r)
	default:
		s.core("Failed with result '%s'.", r)
		if s.start != nil && !s.startOK {
			s.core("Failed to start %s.", s.desc())
		}
		end = Failed
	}
	if restart {
		end = AutoRestart
	}
	s.cleanup(restart)
	s.setState(end)
	if restart {
		s.armTimer(s.restartSec())
	}
}

func (s *Service) restartSec() time.Duration {
	if d := s.svc().RestartSec; d > 0 {
		return d
	}
	return 100 * time.Millisecond
}

// restartTimer fires RestartSec= after auto-restart began: like systemd, it
// asks for a restart job rather than restarting behind the job engine.
func (s *Service) restartTimer() {
	s.st.NRestarts++
	s.restartPending = true
	s.core("Scheduled restart job, restart counter is at %d.", s.st.NRestarts)
	s.setState(AutoRestart)
	if s.d.RequestRestart != nil {
		name := s.u.Name
		s.post = append(s.post, func() { s.d.RequestRestart(name) })
	}
}

// cleanup releases what a run created: the cgroup once empty, and
// RuntimeDirectory= unless RuntimeDirectoryPreserve= keeps it.
func (s *Service) cleanup(restart bool) {
	for pid := range s.watches {
		if pid != s.st.MainPID && pid != s.st.ControlPID {
			s.unwatch(pid)
		}
	}
	if s.d.Cgroups != nil && s.d.Cgroup != "" {
		if pids, err := s.d.Cgroups.Pids(s.d.Cgroup); err == nil && len(pids) == 0 {
			if err := s.d.Cgroups.Remove(s.d.Cgroup); err != nil {
				s.log.Debug("cgroup remove", "cgroup", s.d.Cgroup, "err", err)
			}
		}
	}
	p := s.svc().RuntimeDirectoryPreserve
	if p == "yes" || (p == "restart" && restart) {
		return
	}
	for _, d := range s.svc().RuntimeDirectory {
		dir := filepath.Join(s.d.Root, "run", d)
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("remove RuntimeDirectory", "dir", dir, "err", err)
		}
	}
}

// shouldRestart is systemd's service_shall_restart.
func (s *Service) shouldRestart() bool {
	if s.forbidRestart {
		return false
	}
	r := s.st.Result
	if r == StartLimitHit || r == SkipCondition {
		return false
	}
	svc := s.svc()
	if inSet(svc.RestartPreventExitStatus, s.st.ExecMainCode, s.st.ExecMainStatus) {
		return false
	}
	if inSet(svc.RestartForceExitStatus, s.st.ExecMainCode, s.st.ExecMainStatus) {
		return true
	}
	switch svc.Restart {
	case unit.RestartAlways:
		return true
	case unit.RestartOnSuccess:
		return r == Success
	case unit.RestartOnFailure:
		return r != Success
	case unit.RestartOnAbnormal:
		return r != Success && r != ExitCode
	case unit.RestartOnWatchdog:
		return r == Watchdog
	case unit.RestartOnAbort:
		return r == Signal || r == CoreDump
	}
	return false
}

// CLD_* codes as systemd records them in ExecMainCode.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

func inSet(set unit.ExitStatusSet, code, status int) bool {
	switch code {
	case cldExited:
		for _, c := range set.Codes {
			if c == status {
				return true
			}
		}
	case cldKilled, cldDumped:
		for _, sg := range set.Signals {
			if sg == status {
				return true
			}
		}
	}
	return false
}

// Kill sends sig to the unit's processes without changing its state; the
// exits that follow are handled like any other (and may restart the unit).
// who is "main", "control" or "all" (the default).
func (s *Service) Kill(who string, sig syscall.Signal) error {
	s.lock()
	defer s.unlock()
	main, ctl := s.st.MainPID, s.st.ControlPID
	switch who {
	case "main":
		if main == 0 {
			return fmt.Errorf("unit %s: no main process to kill", s.u.Name)
		}
		return s.kill1(main, sig)
	case "control":
		if ctl == 0 {
			return fmt.Errorf("unit %s: no control process to kill", s.u.Name)
		}
		return s.kill1(ctl, sig)
	case "", "all":
		killed := false
		for _, p := range []int{main, ctl} {
			if p != 0 && s.kill1(p, sig) == nil {
				killed = true
			}
		}
		if s.d.Cgroups != nil && s.d.Cgroup != "" {
			if pids, err := s.d.Cgroups.Pids(s.d.Cgroup); err == nil && len(pids) > 0 {
				if err := s.d.Cgroups.Kill(s.d.Cgroup, sig); err != nil {
					return fmt.Errorf("unit %s: kill cgroup %s: %w", s.u.Name, s.d.Cgroup, err)
				}
				killed = true
			}
		}
		if !killed {
			return fmt.Errorf("unit %s: no processes to kill", s.u.Name)
		}
		return nil
	}
	return fmt.Errorf("unit %s: kill: unknown whom %q (main, control or all)", s.u.Name, who)
}

func (s *Service) kill1(pid int, sig syscall.Signal) error {
	if err := s.kill(pid, sig); err != nil {
		return fmt.Errorf("unit %s: kill %d: %w", s.u.Name, pid, err)
	}
	return nil
}
