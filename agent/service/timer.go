package service

import (
	"syscall"
	"time"
)

// armTimer (re)arms the state timer: the timeout of the current state, or
// RestartSec= in auto-restart. d <= 0 means no timeout (infinity).
func (s *Service) armTimer(d time.Duration) {
	s.cancelTimer()
	if d <= 0 {
		return
	}
	s.deadline = s.d.Now().Add(d)
	s.startTimer(d)
}

func (s *Service) startTimer(d time.Duration) {
	gen := s.timerGen
	st := s.st.SubState
	s.timer = time.AfterFunc(d, func() {
		s.lock()
		defer s.unlock()
		if gen == s.timerGen && s.st.SubState == st {
			s.timer = nil
			s.onTimeout()
		}
	})
}

func (s *Service) cancelTimer() {
	s.timerGen++
	s.deadline = time.Time{}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// extendTimeout implements EXTEND_TIMEOUT_USEC=: the current start/stop
// timeout is pushed to at least now+d.
func (s *Service) extendTimeout(d time.Duration) {
	st := s.st.SubState
	if s.deadline.IsZero() || !(st.starting() || st.stopping() || st == Reloading) {
		return
	}
	nd := s.d.Now().Add(d)
	if nd.Before(s.deadline) {
		return
	}
	s.cancelTimer()
	s.deadline = nd
	s.startTimer(d)
}

// after runs fn under the lock after d, unless the state changed meanwhile.
func (s *Service) after(d time.Duration, fn func()) {
	gen := s.pollGen
	time.AfterFunc(d, func() {
		s.lock()
		defer s.unlock()
		if gen == s.pollGen {
			fn()
		}
	})
}

// onTimeout handles expiry of the state timer, with systemd's messages.
func (s *Service) onTimeout() {
	switch st := s.st.SubState; st {
	case Condition, StartPre, StartState:
		s.core("%s operation timed out. Terminating.", capitalize(string(st)))
		s.enterSignal(StopSigterm, Timeout)
	case StartPost:
		s.core("Start-post operation timed out. Stopping.")
		s.enterStop(Timeout)
	case Running:
		s.core("Service reached runtime time limit. Stopping.")
		s.enterStop(Timeout)
	case Reloading:
		s.core("Reload operation timed out. Killing reload process.")
		if pid := s.st.ControlPID; pid != 0 {
			_ = s.kill(pid, syscall.SIGKILL)
			s.unwatch(pid)
			s.st.ControlPID = 0
		}
		s.notifyReload = false
		s.reloadResult(Timeout)
	case StopState:
		s.core("Stopping timed out. Terminating.")
		s.enterSignal(StopSigterm, Timeout)
	case StopWatchdog, StopSigterm:
		if s.svc().SendSIGKILL {
			s.core("State '%s' timed out. Killing.", st)
			s.enterSignal(StopSigkill, Timeout)
		} else {
			s.core("State '%s' timed out. Skipping SIGKILL.", st)
			s.enterStopPost(Timeout)
		}
	case StopSigkill:
		s.core("Processes still around after SIGKILL. Ignoring.")
		s.enterStopPost(Timeout)
	case StopPost:
		s.core("State 'stop-post' timed out. Terminating.")
		s.enterSignal(FinalSigterm, Timeout)
	case FinalSigterm:
		if s.svc().SendSIGKILL {
			s.core("State 'final-sigterm' timed out. Killing.")
			s.enterSignal(FinalSigkill, Timeout)
		} else {
			s.core("State 'final-sigterm' timed out. Skipping SIGKILL. Entering failed mode.")
			s.enterDead(Timeout, false)
		}
	case FinalSigkill:
		s.core("Processes still around after final SIGKILL. Entering failed mode.")
		s.enterDead(Timeout, true)
	case AutoRestart:
		s.restartTimer()
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}

func (s *Service) watchdogUsec() time.Duration {
	if s.wdUsec > 0 {
		return s.wdUsec
	}
	return s.svc().WatchdogSec
}

// armWatchdog (re)starts the watchdog; WATCHDOG=1 calls it again.
func (s *Service) armWatchdog() {
	s.stopWatchdog()
	d := s.watchdogUsec()
	if d <= 0 {
		return
	}
	gen := s.wdGen
	s.wdTimer = time.AfterFunc(d, func() {
		s.lock()
		defer s.unlock()
		if gen == s.wdGen {
			s.watchdogFired()
		}
	})
}

func (s *Service) stopWatchdog() {
	s.wdGen++
	if s.wdTimer != nil {
		s.wdTimer.Stop()
		s.wdTimer = nil
	}
}

func (s *Service) watchdogFired() {
	st := s.st.SubState
	if !(st.starting() || st == Running || st == Reloading) {
		return
	}
	s.core("Watchdog timeout (limit %s)!", s.watchdogUsec())
	s.enterSignal(StopWatchdog, Watchdog)
}
