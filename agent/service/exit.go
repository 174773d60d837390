package service

import (
	"syscall"
	"time"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unit"
)

// runControl runs cmds one after the other as the control process in state
// st; next runs when all succeeded, fail with the result of the first failure.
func (s *Service) runControl(st SubState, kind string, cmds []unit.Command, timeout time.Duration, next func(), fail func(Result)) {
	s.ctlCmd = nil
	if len(cmds) == 0 {
		next()
		return
	}
	c := &cmdRun{kind: kind, cmds: cmds, next: next, fail: fail}
	s.ctlCmd = c
	if err := s.spawnControl(c); err != nil {
		s.ctlCmd = nil
		fail(Resources)
		return
	}
	s.setState(st)
	s.armTimer(timeout)
}

func (s *Service) spawnControl(c *cmdRun) error {
	pid, err := s.spawn(c, false)
	if pid > 0 {
		s.st.ControlPID = pid
		s.st.ControlPIDStart, _ = proc.StartTime(pid)
		s.watch(pid)
	}
	if pid == 0 {
		return err
	}
	return nil
}

// spawnMain starts the main process. started is true when there is a
// process whose exit will follow, even if err says its exec failed.
func (s *Service) spawnMain() (started bool, err error) {
	pid, err := s.spawn(s.mainCmd, true)
	if pid > 0 {
		s.setMainPID(pid)
	}
	return pid > 0, err
}

func (s *Service) setMainPID(pid int) {
	if old := s.st.MainPID; old != 0 && old != pid {
		s.unwatch(old)
	}
	s.st.MainPID = pid
	s.st.MainPIDStart, _ = proc.StartTime(pid)
	s.watch(pid)
}

// watch delivers pid's exit to onExit. The goroutine ends with the exit or
// when unwatch is called.
func (s *Service) watch(pid int) {
	if _, ok := s.watches[pid]; ok || s.d.Reaper == nil {
		return
	}
	ch := s.d.Reaper.Watch(pid)
	stop := make(chan struct{})
	s.watches[pid] = stop
	go func() {
		select {
		case e := <-ch:
			s.lock()
			defer s.unlock()
			if s.watches[pid] == stop {
				delete(s.watches, pid)
				s.onExit(e)
			}
		case <-stop:
			s.d.Reaper.Unwatch(pid)
		}
	}()
}

func (s *Service) unwatch(pid int) {
	if stop, ok := s.watches[pid]; ok {
		close(stop)
		delete(s.watches, pid)
	}
}

func (s *Service) onExit(e reaper.Exit) {
	switch e.PID {
	case s.st.MainPID:
		s.onMainExit(e)
	case s.st.ControlPID:
		s.onControlExit(e)
	}
}

// exitResult classifies an exit. Daemons (the main process of anything but
// a oneshot) also exit cleanly on SIGHUP, SIGINT, SIGTERM and SIGPIPE.
func exitResult(e reaper.Exit, daemon bool, ok unit.ExitStatusSet, ignore bool) Result {
	if ignore {
		return Success
	}
	if e.Status == StatusUnknown { // an adopted process (adopt.go)
		return Unknown
	}
	if sig := e.Signal(); sig != 0 {
		if daemon && (sig == syscall.SIGHUP || sig == syscall.SIGINT || sig == syscall.SIGTERM || sig == syscall.SIGPIPE) {
			return Success
		}
		for _, x := range ok.Signals {
			if x == int(sig) {
				return Success
			}
		}
		if e.Status.CoreDump() {
			return CoreDump
		}
		return Signal
	}
	c := e.Code()
	if c == 0 {
		return Success
	}
	for _, x := range ok.Codes {
		if x == c {
			return Success
		}
	}
	return ExitCode
}

func (s *Service) onMainExit(e reaper.Exit) {
	s.st.MainPID, s.st.MainPIDStart = 0, 0
	ee := e
	s.mainExit = &ee
	if e.Status == StatusUnknown {
		s.st.ExecMainCode, s.st.ExecMainStatus = 0, 0 // adopt.go: nobody saw it end
	} else if sig := e.Signal(); sig != 0 {
		s.st.ExecMainCode, s.st.ExecMainStatus = cldKilled, int(sig)
		if e.Status.CoreDump() {
			s.st.ExecMainCode = cldDumped
		}
	} else {
		s.st.ExecMainCode, s.st.ExecMainStatus = cldExited, e.Code()
	}
	typ := s.serviceType()
	ignore := s.mainCmd != nil && s.mainCmd.cur().Flags&unit.IgnoreFailure != 0
	f := exitResult(e, typ != unit.Oneshot, s.svc().SuccessExitStatus, ignore)
	if f != Success {
		s.core("Main process exited, %s", e.String())
	}
	st := s.st.SubState
	if mc := s.mainCmd; typ == unit.Oneshot && st == StartState && f == Success && mc != nil && mc.i+1 < len(mc.cmds) {
		mc.i++
		if started, _ := s.spawnMain(); !started {
			s.enterSignal(StopSigterm, Resources)
		}
		return
	}
	s.mainCmd = nil
	if s.st.Result == Success {
		s.st.Result = f
	}
	switch st {
	case StartState:
		switch typ {
		case unit.Oneshot:
			if f == Success {
				s.enterStartPost()
			} else {
				s.enterSignal(StopSigterm, f)
			}
		case unit.Notify:
			if f != Success {
				s.enterSignal(StopSigterm, f)
			} else if !s.svc().RemainAfterExit || s.notifyAccess() == unit.NotifyMain {
				s.core("Main process exited before READY=1.")
				s.enterSignal(StopSigterm, Protocol)
			}
		default:
			s.enterRunning(f)
		}
	case Running:
		s.enterRunning(f)
	case StopWatchdog, StopSigterm, StopSigkill, FinalSigterm, FinalSigkill:
		s.checkKillDone()
	default:
		// start-post, reload, stop, stop-post: the control process decides.
		s.emit()
	}
}

func (s *Service) onControlExit(e reaper.Exit) {
	c := s.ctlCmd
	s.st.ControlPID, s.st.ControlPIDStart = 0, 0
	if c == nil {
		s.checkKillDone()
		return
	}
	f := exitResult(e, false, s.svc().SuccessExitStatus, c.cur().Flags&unit.IgnoreFailure != 0)
	if c.kind == "ExecCondition" && f != Success && e.Code() >= 1 && e.Code() <= 254 {
		s.core("Condition check resulted in %s being skipped.", s.desc())
		f = SkipCondition
	} else if f != Success {
		s.core("Control process exited, %s (%s %s)", e.String(), c.kind, c.cur().Path)
	}
	if isKillState(s.st.SubState) {
		s.ctlCmd = nil
		if s.st.Result == Success {
			s.st.Result = f
		}
		s.checkKillDone()
		return
	}
	if f == Success && c.i+1 < len(c.cmds) {
		c.i++
		if err := s.spawnControl(c); err != nil {
			s.ctlCmd = nil
			c.fail(Resources)
		}
		return
	}
	s.ctlCmd = nil
	if f == Success {
		c.next()
	} else {
		c.fail(f)
	}
}

// emit queues a change report without a state change (PIDs, STATUS=).
func (s *Service) emit() {
	s.st.Job = s.jobActive()
	if s.st == s.last {
		return
	}
	s.queue(s.last)
}
