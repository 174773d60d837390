package service

import (
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unit"
)

// Re-adoption after a restart of the core (issue 7). When corral-agent dies,
// its services keep running: they re-parent to the supervisor, which reaps
// them and records their exit statuses. The next core reads the state DB and
// hands each service its last recorded state with Adopt, before the default
// target is started, so that nothing is started a second time. The adopted
// processes are no longer our children: their exits come from a PIDWatcher
// (a pidfd plus the supervisor's exit record) instead of the reaper, and are
// then handled exactly like any other exit (Restart=, OnFailure=, state DB).

// Unknown is the result of a run whose end was not observed: the process
// was gone when the core came back and the supervisor had no record of its
// exit (its table overflowed, or it was replaced without one). It counts as
// a failure, so Restart=on-failure and on-abnormal restart the unit.
const Unknown Result = "unknown"

// StatusUnknown is the wait status a PIDWatcher delivers for an exit whose
// status is not known. No real wait(2) status has this value (it would be
// "stopped by signal 255", and nothing waits with WUNTRACED).
const StatusUnknown unix.WaitStatus = 0xffffffff

// PIDWatcher delivers the exit of a process that is not our child. The
// channel gets one Exit (Status is StatusUnknown when the status could not
// be learnt); cancel stops watching. A process that is gone already, or
// whose start time differs from start (the PID was reused), is reported as
// exited at once.
type PIDWatcher interface {
	WatchPID(pid int, start uint64) (exits <-chan reaper.Exit, cancel func())
}

// Adoption is what the state DB recorded about a service when the previous
// core died.
type Adoption struct {
	SubState        SubState
	Result          Result
	MainPID         int
	MainPIDStart    uint64
	ControlPID      int
	ControlPIDStart uint64
	InvocationID    string
	ExecMainCode    int
	ExecMainStatus  int
	NRestarts       int
	StatusText      string
	Since           time.Time
}

// Adopt restores an inactive service to the state a has recorded, and
// watches its recorded processes with w. It reports whether the unit came
// back in a state with processes to watch.
//
// The restored state is not reported through OnChange: it is what the DB
// already holds, and the job engine must not take it for a change of the
// unit (which would start its requirements or run OnFailure= again).
// Changes after that (the adopted process exits) are reported as usual.
//
// The rules, by recorded sub-state:
//   - running, reload, start-post: running, main (and control) PID watched;
//   - start with a main PID (oneshot, notify): start again, with the start
//     timeout re-armed; a oneshot's ExecStart= list is taken to be at its
//     last command;
//   - exited: exited;
//   - auto-restart: auto-restart with RestartSec= re-armed;
//   - stopping states: the stop goes on (KillSignal= again, then SIGKILL);
//   - condition, start-pre (a start interrupted before the main process):
//     the leftovers are killed and the unit fails with result "unknown"
//     (Restart= then applies);
//   - dead, failed: restored quietly (Result, ExecMain*, NRestarts).
func (s *Service) Adopt(a Adoption, w PIDWatcher) bool {
	s.lock()
	defer s.unlock()
	return s.adopt(a, w)
}

func (s *Service) adopt(a Adoption, w PIDWatcher) bool {
	if s.st.SubState != Dead || s.u.Service == nil {
		return false
	}
	s.pidw = w
	s.st.Result = a.Result
	if s.st.Result == "" {
		s.st.Result = Success
	}
	s.st.InvocationID, s.invocation = a.InvocationID, a.InvocationID
	s.st.ExecMainCode, s.st.ExecMainStatus = a.ExecMainCode, a.ExecMainStatus
	s.st.NRestarts = a.NRestarts
	s.st.StatusText = a.StatusText
	if !a.Since.IsZero() {
		s.st.Since = a.Since
	}
	quiet := func(st SubState) {
		s.st.SubState, s.st.ActiveState = st, st.Active()
		s.st.Job = false
		s.last = s.st
	}
	setMain := func() {
		s.st.MainPID, s.st.MainPIDStart = a.MainPID, a.MainPIDStart
		if typ := s.serviceType(); typ != unit.Forking && len(s.svc().ExecStart) > 0 {
			cmds := s.svc().ExecStart
			if typ != unit.Oneshot {
				cmds = cmds[:1]
			}
			s.mainCmd = &cmdRun{kind: "ExecStart", cmds: cmds, i: len(cmds) - 1}
		}
	}
	setControl := func() {
		if a.ControlPID != 0 {
			s.st.ControlPID, s.st.ControlPIDStart = a.ControlPID, a.ControlPIDStart
		}
	}
	watchAll := func() {
		if s.st.MainPID != 0 {
			s.watchAdopted(s.st.MainPID, s.st.MainPIDStart)
		}
		if s.st.ControlPID != 0 {
			s.watchAdopted(s.st.ControlPID, s.st.ControlPIDStart)
		}
	}
	s.log.Info("re-adopting", "state", a.SubState, "main_pid", a.MainPID, "control_pid", a.ControlPID)
	switch st := a.SubState; {
	case st == Running || st == Reloading || st == StartPost || (st == StartState && a.MainPID != 0 && s.serviceType() != unit.Oneshot && s.serviceType() != unit.Notify):
		if a.MainPID == 0 && !s.cgroupPopulated() {
			// Nothing to adopt: a forking daemon without a main PID
			// whose cgroup emptied while no core ran.
			quiet(Running)
			s.enterRunning(Success)
			return false
		}
		setMain()
		setControl()
		s.startOK = true
		quiet(Running)
		watchAll()
		s.armWatchdog()
		if s.st.MainPID == 0 {
			s.pollCgroupWhileRunning()
		}
		return true
	case st == StartState && a.MainPID != 0:
		setMain()
		setControl()
		quiet(StartState)
		watchAll()
		s.armTimer(s.timeoutStart())
		return true
	case st == Exited:
		quiet(Exited)
		s.startOK = true
		return false
	case st == AutoRestart:
		s.restartPending = true
		quiet(AutoRestart)
		s.armTimer(s.restartSec())
		return false
	case st.stopping():
		setMain()
		setControl()
		s.forbidRestart = true
		quiet(st)
		watchAll()
		s.enterSignal(StopSigterm, Success)
		return true
	case st.starting():
		setControl()
		quiet(st)
		watchAll()
		s.core("Start was interrupted by a restart of the service manager.")
		s.enterSignal(StopSigterm, Unknown)
		return true
	case st == Failed:
		quiet(Failed)
	}
	return false
}

// AdoptStray adopts the processes found in the unit's cgroup when the state
// DB has no live main PID for it (the core died between spawning the main
// process and recording it): the earliest started one becomes the main PID
// and the unit is running. The caller picked pid.
//
// The unit may have been restored as failed: a start of a failed unit
// records nothing before its main process runs, so the record still says
// failed. That run is the newer one; refusing it would leave a process in
// the cgroup that no unit tracks, and the next start would spawn a second.
func (s *Service) AdoptStray(pid int, start uint64, w PIDWatcher) bool {
	s.lock()
	defer s.unlock()
	if s.st.SubState == Failed && s.st.MainPID == 0 && s.st.ControlPID == 0 && len(s.watches) == 0 {
		s.st.SubState, s.st.ActiveState = Dead, Dead.Active()
	}
	return s.adopt(Adoption{SubState: Running, MainPID: pid, MainPIDStart: start}, w)
}

// watchAdopted is watch for a process that is not our child.
func (s *Service) watchAdopted(pid int, start uint64) {
	if _, ok := s.watches[pid]; ok || s.pidw == nil {
		return
	}
	ch, cancel := s.pidw.WatchPID(pid, start)
	stop := make(chan struct{})
	s.watches[pid] = stop
	go func() {
		select {
		case e := <-ch:
			s.lock()
			defer s.unlock()
			if s.watches[pid] == stop {
				delete(s.watches, pid)
				if e.Status == StatusUnknown {
					s.core("Process %d ended while no service manager ran; its exit status is unknown.", pid)
				}
				s.onExit(e)
			}
		case <-stop:
			cancel()
		}
	}()
}

func (s *Service) cgroupPopulated() bool {
	if s.d.Cgroups == nil || s.d.Cgroup == "" {
		return false
	}
	pids, err := s.d.Cgroups.Pids(s.d.Cgroup)
	return err == nil && len(pids) > 0
}

// Release stops watching the service's processes and its timers without
// changing its state or touching any process, and returns its status: the
// runtime object is being replaced by another for the same processes
// (manager.AdoptTransient).
func (s *Service) Release() Status {
	s.lock()
	defer s.unlock()
	for pid := range s.watches {
		s.unwatch(pid)
	}
	s.cancelTimer()
	s.stopWatchdog()
	s.pollGen++
	return s.st
}
