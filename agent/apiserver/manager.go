// Package apiserver serves Corral's management API (api/corral/v1) on
// <root>/run/corral/api.sock. It owns the wire format, authorization and the
// mapping of errors to gRPC codes; everything about units is delegated to a
// Manager, declared here in plain Go types so that the manager never has to
// import protobuf code.
package apiserver

import (
	"context"
	"syscall"
	"time"
)

// Manager is what the server needs from the unit manager. It is cut into
// small interfaces by concern so that a fake (see apiservertest) or a partial
// implementation stays easy to write.
//
// Error contract: return errors that wrap one of the sentinels in errors.go
// (e.g. fmt.Errorf("unit %s: %w", name, apiserver.ErrNotFound)); they become
// the matching gRPC code. Any other error becomes codes.Internal. The error
// text is shown to the user, so it should name the unit.
type Manager interface {
	Units
	Jobs
	UnitFiles
	LogReader
	System
}

// Units are the queries and direct actions on loaded units.
type Units interface {
	// ListUnits returns every unit the manager knows about (loaded, or
	// referenced by a loaded unit); the server applies ListFilter itself.
	ListUnits(ctx context.Context) ([]UnitSummary, error)
	// UnitStatus loads the unit if needed. A unit without a file may either
	// be returned with LoadState "not-found" or as ErrNotFound.
	UnitStatus(ctx context.Context, name string) (UnitDetail, error)
	// Kill signals the unit's processes; whom is "all", "main" or "control".
	Kill(ctx context.Context, name, whom string, sig syscall.Signal) error
	// ResetFailed resets one unit, or every failed unit when name is "".
	ResetFailed(ctx context.Context, name string) error
	// Cat returns the fragment then the drop-ins, in the order applied.
	Cat(ctx context.Context, name string) ([]UnitFile, error)
}

// Jobs is the job engine as seen by clients.
type Jobs interface {
	// Enqueue starts a transaction for one unit. jobType is one of start,
	// stop, restart, reload, try-restart, reload-or-restart; mode is a
	// systemd job mode (replace, fail, isolate, ignore-dependencies, flush,
	// ...). With wait it returns once the job finished, with Result set;
	// without, as soon as the job is enqueued.
	Enqueue(ctx context.Context, name, jobType, mode string, wait bool) (JobResult, error)
	ListJobs(ctx context.Context) ([]Job, error)
	CancelJob(ctx context.Context, id uint64) error
}

// UnitFiles are the [Install]-section operations. With now, the manager also
// starts (Enable, Unmask) or stops (Disable, Mask) the units.
type UnitFiles interface {
	Enable(ctx context.Context, names []string, now bool) ([]Change, error)
	Disable(ctx context.Context, names []string, now bool) ([]Change, error)
	Mask(ctx context.Context, names []string, now bool) ([]Change, error)
	Unmask(ctx context.Context, names []string, now bool) ([]Change, error)
	// IsEnabled returns systemd's unit file state ("enabled", "disabled",
	// "static", "masked", "alias", "indirect", ...); ErrNotFound when there
	// is no unit file.
	IsEnabled(ctx context.Context, name string) (string, error)
	// DaemonReload re-reads every unit file.
	DaemonReload(ctx context.Context) error
}

// LogReader reads the per-unit log store. name "" means every unit. n > 0
// limits the output to the last n entries; a zero since means no lower
// bound. With follow it keeps calling fn with new entries until ctx is done
// (then it returns nil). An error from fn stops the read and is returned.
type LogReader interface {
	Logs(ctx context.Context, name string, n int, since time.Time, follow bool, fn func(LogEntry) error) error
}

// System is about the manager as a whole.
type System interface {
	SystemState(ctx context.Context) (SystemState, error)
	// Shutdown starts the action ("poweroff", "reboot", "halt", "exit") and
	// returns before it completes, so that the client gets its answer.
	Shutdown(ctx context.Context, action string) error
}

// ListFilter selects units for ListUnits, as systemctl list-units does.
type ListFilter struct {
	All      bool     // include inactive units without a job
	Types    []string // unit types, e.g. "service"
	States   []string // matches load, active or sub state
	Patterns []string // shell globs on the name
}

// UnitSummary is one line of list-units.
type UnitSummary struct {
	Name        string
	Description string
	LoadState   string
	ActiveState string
	SubState    string
	JobID       uint64 // pending job, 0 if none
	JobType     string
}

// UnitDetail is everything status and show report about one unit.
type UnitDetail struct {
	UnitSummary
	Names         []string // aliases (Name is added by the server if missing)
	Result        string
	LoadError     string
	Warnings      []string
	FragmentPath  string
	DropIns       []string
	UnitFileState string
	Deps          map[string][]string // "Requires" → units, forward and inverse kinds

	MainPID    int
	ControlPID int
	ExecMain   ExecStatus
	StatusText string
	NRestarts  int

	StateChange   time.Time
	ActiveEnter   time.Time
	ActiveExit    time.Time
	InactiveEnter time.Time
	InactiveExit  time.Time

	Cgroup string
	// PIDs are the processes in the unit's cgroup. The server reads /proc
	// for their parents and command lines to draw the tree, so the manager
	// does not have to.
	PIDs   []int
	Memory Usage // bytes
	Tasks  Usage // number of tasks
	CPU    Usage // nanoseconds of CPU time; Max unused

	// Properties are additional key/value pairs for `show` (configuration
	// such as Type=, Restart=, ExecStart=), emitted after the standard ones.
	Properties []Property
}

// Usage is a resource reading. Valid distinguishes "unknown" from zero.
type Usage struct {
	Valid   bool
	Current uint64
	Max     uint64 // 0 = no limit
}

// ExecStatus is the last main process's exit.
type ExecStatus struct {
	PID    int
	Code   string // "exited", "killed", "dumped"; "" if it has not exited
	Status int    // exit code or signal number
	Start  time.Time
	Exit   time.Time
}

// Property is one key/value line of `show`.
type Property struct {
	Key, Value string
}

// JobResult is the outcome of Enqueue.
type JobResult struct {
	ID     uint64
	Type   string // the job type actually enqueued (try-restart may become restart)
	Result string // "done", "canceled", "timeout", "failed", "dependency", "skipped"; "" if not waited for
}

// Job is one pending job.
type Job struct {
	ID    uint64
	Unit  string
	Type  string
	State string // "waiting" or "running"
}

// Change is one symlink created ("symlink") or removed ("unlink").
type Change struct {
	Type   string
	Path   string
	Source string
}

// UnitFile is one file making up a unit.
type UnitFile struct {
	Path    string
	Content string
}

// LogEntry is one line of a unit's log.
type LogEntry struct {
	Time   time.Time
	Unit   string
	Stream string // "stdout", "stderr", "core"
	Msg    string
}

// SystemState is what Health reports.
type SystemState struct {
	State       string // "starting", "running", "degraded", "stopping"
	FailedUnits int
	Jobs        int
}
