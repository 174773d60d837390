package service

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"corral.io/corral/agent/notify"
	"corral.io/corral/agent/unit"
)

// Notify handles one sd_notify datagram the manager routed to this unit.
// Messages from senders NotifyAccess= does not allow are dropped.
func (s *Service) Notify(m notify.Message) {
	for _, f := range m.FDs {
		_ = f.Close() // no fd store
	}
	s.lock()
	defer s.unlock()
	if s.u.Service == nil || !s.notifyAllowed(m.PID) {
		s.log.Debug("notify message dropped", "pid", m.PID, "access", s.notifyAccess(), "raw", m.Raw)
		return
	}
	f := m.Fields
	st := s.st.SubState
	if v, ok := f["MAINPID"]; ok && (st == StartState || st == StartPost || st == Running || st == Reloading) {
		if pid, err := strconv.Atoi(v); err == nil && pid > 0 && pid != s.st.MainPID {
			s.setMainPID(pid)
		}
	}
	if v, ok := f["STATUS"]; ok {
		s.st.StatusText = v
	}
	if v, ok := f["ERRNO"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			s.st.StatusErrno = n
		}
	}
	if v, ok := f["WATCHDOG_USEC"]; ok {
		if n, err := strconv.ParseUint(v, 10, 63); err == nil {
			s.wdUsec = time.Duration(n) * time.Microsecond
			s.armWatchdog()
		}
	}
	if v, ok := f["EXTEND_TIMEOUT_USEC"]; ok {
		if n, err := strconv.ParseUint(v, 10, 63); err == nil {
			s.extendTimeout(time.Duration(n) * time.Microsecond)
		}
	}
	switch f["WATCHDOG"] {
	case "1":
		if s.st.SubState.starting() || s.st.SubState == Running || s.st.SubState == Reloading {
			s.armWatchdog()
		}
	case "trigger":
		s.watchdogFired()
	}
	if f["RELOADING"] == "1" {
		s.notifyReady = false
		if s.st.SubState == Running {
			s.notifyReload = true
			s.core("Reloading %s...", s.desc())
			s.setState(Reloading)
			s.armTimer(s.timeoutStart())
		} else if s.st.SubState == Reloading {
			s.notifyReload = true
		}
	}
	if f["STOPPING"] == "1" && (s.st.SubState == Running || s.st.SubState == Reloading) {
		// The service stops on its own: wait for it, kill only on timeout.
		s.core("Stopping %s...", s.desc())
		s.setState(StopSigterm)
		s.armTimer(s.timeoutStop())
		s.pollKill()
	}
	if f["READY"] == "1" {
		s.notifyReady = true
		switch {
		case s.st.SubState == StartState && s.serviceType() == unit.Notify:
			s.enterStartPost()
		case s.st.SubState == Reloading && s.notifyReload:
			s.notifyReload = false
			if s.ctlCmd == nil {
				s.reloadResult(Success)
			}
		}
	}
	s.emit()
}

func (s *Service) notifyAllowed(pid int) bool {
	switch s.notifyAccess() {
	case unit.NotifyMain:
		return pid > 0 && pid == s.st.MainPID
	case unit.NotifyExecAccess:
		return pid > 0 && (pid == s.st.MainPID || pid == s.st.ControlPID)
	case unit.NotifyAll:
		if pid > 0 && (pid == s.st.MainPID || pid == s.st.ControlPID) {
			return true
		}
		if s.d.Cgroups == nil || s.d.Cgroup == "" {
			return false
		}
		pids, err := s.d.Cgroups.Pids(s.d.Cgroup)
		return err == nil && slices.Contains(pids, pid)
	}
	return false
}

// Reload runs ExecReload= (and, for services that send RELOADING=1, waits for
// READY=1). A failed reload leaves the service running and returns the error.
func (s *Service) Reload(ctx context.Context) error {
	s.lock()
	s.inCall = true
	var a *attempt
	var err error
	st := s.st.SubState
	switch {
	case s.u.Service == nil:
		err = fmt.Errorf("unit %s has no [Service] section", s.u.Name)
	case st == Reloading:
		if s.reload == nil {
			s.reload = newAttempt()
		}
		a = s.reload
	case st != Running && st != Exited:
		err = fmt.Errorf("unit %s is %s, cannot reload", s.u.Name, st.Active())
	case len(s.svc().ExecReload) == 0:
		err = fmt.Errorf("unit %s: job type reload is not applicable (no ExecReload=)", s.u.Name)
	default:
		a = newAttempt()
		s.reload = a
		s.reloadFailed = nil
		s.notifyReload = false
		s.core("Reloading %s...", s.desc())
		s.runControl(Reloading, "ExecReload", s.svc().ExecReload, s.timeoutStart(),
			func() { s.reloadResult(Success) }, s.reloadResult)
	}
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

// reloadResult ends a reload; the service goes back to running either way.
func (s *Service) reloadResult(f Result) {
	if f != Success {
		s.reloadFailed = fmt.Errorf("unit %s: reload failed with result '%s'", s.u.Name, f)
		s.core("Reload failed with result '%s'.", f)
	} else if s.notifyReload {
		return // ExecReload done, the service still has to send READY=1
	} else {
		s.core("Reloaded %s.", s.desc())
	}
	a := s.reload
	s.enterRunning(Success)
	if a != nil && s.reload == a { // enterRunning did not pass through Running
		a.finish(s.queued, s.reloadFailed)
		s.reload = nil
	}
}
