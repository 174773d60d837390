package service

import "time"

// SubState is systemd's per-type state of a service. The manager shows it and
// persists it; the job engine only looks at the ActiveState derived from it.
type SubState string

// Service sub-states, named as systemd names them so that status output and
// scripts that grep it read the same.
const (
	Dead         SubState = "dead"
	Condition    SubState = "condition"
	StartPre     SubState = "start-pre"
	StartState   SubState = "start"
	StartPost    SubState = "start-post"
	Running      SubState = "running"
	Exited       SubState = "exited"
	Reloading    SubState = "reload"
	StopState    SubState = "stop"
	StopWatchdog SubState = "stop-watchdog"
	StopSigterm  SubState = "stop-sigterm"
	StopSigkill  SubState = "stop-sigkill"
	StopPost     SubState = "stop-post"
	FinalSigterm SubState = "final-sigterm"
	FinalSigkill SubState = "final-sigkill"
	Failed       SubState = "failed"
	AutoRestart  SubState = "auto-restart"
)

// Active states (systemd's ActiveState).
const (
	ActiveActive       = "active"
	ActiveReloading    = "reloading"
	ActiveInactive     = "inactive"
	ActiveFailed       = "failed"
	ActiveActivating   = "activating"
	ActiveDeactivating = "deactivating"
)

// Active maps a sub-state to systemd's ActiveState. auto-restart counts as
// activating, as in systemd, so that a crash followed by a restart does not
// look like a stop to units that depend on this one.
func (s SubState) Active() string {
	switch s {
	case Running, Exited:
		return ActiveActive
	case Reloading:
		return ActiveReloading
	case Condition, StartPre, StartState, StartPost, AutoRestart:
		return ActiveActivating
	case StopState, StopWatchdog, StopSigterm, StopSigkill, StopPost, FinalSigterm, FinalSigkill:
		return ActiveDeactivating
	case Failed:
		return ActiveFailed
	}
	return ActiveInactive
}

func (s SubState) starting() bool {
	return s == Condition || s == StartPre || s == StartState || s == StartPost
}

func (s SubState) stopping() bool { return s.Active() == ActiveDeactivating }

// Result is why a service last stopped or failed (systemd's Result=).
type Result string

// Results, as systemd names them.
const (
	Success       Result = "success"
	ExitCode      Result = "exit-code"
	Signal        Result = "signal"
	CoreDump      Result = "core-dump"
	Timeout       Result = "timeout"
	Watchdog      Result = "watchdog"
	StartLimitHit Result = "start-limit-hit"
	Resources     Result = "resources"
	Protocol      Result = "protocol"
	SkipCondition Result = "exec-condition"
)

// Status is a snapshot of a service, what the manager persists in the state DB
// and shows in `corralctl status`.
type Status struct {
	Name        string
	ActiveState string
	SubState    SubState
	Result      Result

	MainPID         int
	MainPIDStart    uint64 // /proc start time, to recognise the PID after a restart of the agent
	ControlPID      int
	ControlPIDStart uint64
	InvocationID    string

	ExecMainCode   int // CLD_EXITED=1, CLD_KILLED=2, CLD_DUMPED=3; 0 = none yet
	ExecMainStatus int // exit code, or signal number

	StatusText  string // STATUS= from sd_notify
	StatusErrno int    // ERRNO= from sd_notify
	NRestarts   int
	Since       time.Time // last state change
	Cgroup      string

	// Job is true when the change was caused by a Start/Stop/Reload call in
	// progress; false means the unit changed on its own (exit, crash,
	// watchdog), which is what drives OnFailure=/BindsTo= follow-ups.
	Job bool
}
