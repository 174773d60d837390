// Package job is Corral's job engine: it turns a request such as "start
// foo.service" into a transaction of jobs over the unit graph (expanding
// requirement dependencies, merging job types, resolving conflicts and
// ordering cycles), installs that transaction atomically, and runs the
// installed jobs in dependency order, in parallel where nothing orders them.
//
// The semantics follow systemd's transaction.c and job.c (job types, modes,
// results and their names), so that unit files behave as they do under
// systemd. The package is pure: it reaches units only through the Graph and
// Executor interfaces, which the manager implements, so every rule here is
// testable with hand-written fakes.
//
// How the manager uses it: New(graph, executor, log), go Run(ctx), then
// Enqueue for every request (API, boot target, socket activation) and Wait
// for the anchor job when the caller wants the outcome. The manager reports
// every active-state change with UnitChanged, saying whether one of the
// engine's executor calls caused it; the engine derives the follow-up jobs
// (BindsTo= stop, OnFailure=, OnSuccess=) from that. Executor calls for one
// unit never overlap: a job on a unit whose previous call is still running
// (for example after it was cancelled) waits for it to return.
package job

import (
	"errors"
	"fmt"
)

// Type is a job type, named as systemd names it.
type Type string

// Job types. ReloadOrRestart and TryReloadOrRestart exist only as requests:
// Enqueue resolves them to ReloadOrStart/TryReload or Restart/TryRestart
// depending on whether the unit can reload, exactly like systemctl does.
// TryRestart and TryReload collapse to Restart/Reload or Nop according to the
// unit's state when the transaction is built, and ReloadOrStart collapses to
// Reload or Start when the job runs.
const (
	Start              Type = "start"
	VerifyActive       Type = "verify-active"
	Stop               Type = "stop"
	Reload             Type = "reload"
	Restart            Type = "restart"
	ReloadOrStart      Type = "reload-or-start"
	TryRestart         Type = "try-restart"
	TryReload          Type = "try-reload"
	ReloadOrRestart    Type = "reload-or-restart"
	TryReloadOrRestart Type = "try-reload-or-restart"
	Nop                Type = "nop"
)

// Mode is a job mode: how a new transaction treats jobs that are already
// installed (systemctl --job-mode).
type Mode string

// Job modes.
const (
	Replace            Mode = "replace"             // replace conflicting installed jobs
	Fail               Mode = "fail"                // refuse if an installed job would be replaced
	Isolate            Mode = "isolate"             // also stop every unit the transaction does not keep
	IgnoreDependencies Mode = "ignore-dependencies" // only the anchor job, unordered
	IgnoreRequirements Mode = "ignore-requirements" // only the anchor job, ordering honoured
	Flush              Mode = "flush"               // cancel every installed job not in the transaction
)

// ParseMode checks a mode given by a user; "" means replace.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return Replace, nil
	case Replace, Fail, Isolate, IgnoreDependencies, IgnoreRequirements, Flush:
		return m, nil
	}
	return "", fmt.Errorf("job mode %q: %w", s, ErrInvalidMode)
}

// Result is how a job ended, named as systemd names it.
type Result string

// Job results.
const (
	Done        Result = "done"
	Canceled    Result = "canceled"
	Timeout     Result = "timeout"
	Failed      Result = "failed"
	Dependency  Result = "dependency"
	Skipped     Result = "skipped"
	Invalid     Result = "invalid"
	Assert      Result = "assert"
	Unsupported Result = "unsupported"
)

// Success reports whether the job reached what it was asked for. A start job
// skipped because a Condition*= failed counts as success, as in systemd: it
// neither fails the units that require it nor triggers OnFailure=.
func (r Result) Success() bool { return r == Done || r == Skipped }

// State is the state of an installed job.
type State string

// Job states.
const (
	Waiting State = "waiting"
	Running State = "running"
)

// Errors returned by Enqueue and Cancel, wrapped with the unit names
// involved. Match them with errors.Is.
var (
	ErrNotFound      = errors.New("unit not found")
	ErrBadSetting    = errors.New("unit has a bad setting")
	ErrLoad          = errors.New("unit failed to load")
	ErrMasked        = errors.New("unit is masked")
	ErrConflict      = errors.New("transaction contains conflicting jobs")
	ErrCycle         = errors.New("transaction order is cyclic")
	ErrDestructive   = errors.New("transaction is destructive")
	ErrIsolate       = errors.New("unit may not be isolated")
	ErrNotApplicable = errors.New("job type not applicable")
	ErrRefused       = errors.New("operation refused")
	ErrInvalidMode   = errors.New("invalid job mode")
	ErrNoSuchJob     = errors.New("no such job")
)

// Errors an Executor returns to give a job a result other than failed.
// Any other non-nil error means failed; a ResultError carries any result.
var (
	ErrSkipped     = errors.New("condition failed")                 // result skipped (counts as success)
	ErrAssert      = errors.New("assertion failed")                 // result assert
	ErrUnsupported = errors.New("operation not supported for unit") // result unsupported
	ErrInvalid     = errors.New("operation invalid in unit state")  // result invalid
)

// ResultError lets an Executor choose the job result explicitly.
type ResultError struct {
	Result Result
	Err    error
}

func (e *ResultError) Error() string {
	if e.Err == nil {
		return string(e.Result)
	}
	return e.Err.Error()
}

func (e *ResultError) Unwrap() error { return e.Err }

// resultOf maps an executor's error to a job result.
func resultOf(err error) Result {
	var re *ResultError
	switch {
	case err == nil:
		return Done
	case errors.As(err, &re):
		return re.Result
	case errors.Is(err, ErrSkipped):
		return Skipped
	case errors.Is(err, ErrAssert):
		return Assert
	case errors.Is(err, ErrUnsupported):
		return Unsupported
	case errors.Is(err, ErrInvalid):
		return Invalid
	}
	return Failed
}

// merge returns the job type that does the work of both a and b on one
// unit, or false if they conflict (systemd's job_type_lookup_merge, extended
// to reload-or-start and nop). Only stop conflicts with the rest.
func merge(a, b Type) (Type, bool) {
	switch {
	case a == b:
		return a, true
	case a == Nop:
		return b, true
	case b == Nop:
		return a, true
	case a == Stop || b == Stop:
		return "", false
	case a == Restart || b == Restart:
		return Restart, true
	}
	start := a == Start || b == Start || a == ReloadOrStart || b == ReloadOrStart
	reload := a == Reload || b == Reload || a == ReloadOrStart || b == ReloadOrStart
	switch {
	case start && reload:
		return ReloadOrStart, true
	case start:
		return Start, true
	case reload:
		return Reload, true
	}
	return VerifyActive, true
}

// superset reports whether a job of type a already does everything b asks.
func superset(a, b Type) bool {
	m, ok := merge(a, b)
	return ok && m == a
}

// stopish types begin by stopping the unit, so ordering runs them before
// jobs of units ordered after them, whatever the direction (systemd rule).
func stopish(t Type) bool { return t == Stop || t == Restart }

// Active-state helpers over systemd's state names.
func isActive(s string) bool   { return s == "active" || s == "reloading" }
func isInactive(s string) bool { return s == "inactive" || s == "failed" || s == "" }

// collapse resolves the try- types against the unit's current state.
func collapse(t Type, state string) Type {
	switch t {
	case TryRestart:
		if isInactive(state) || state == "deactivating" {
			return Nop
		}
		return Restart
	case TryReload:
		if isInactive(state) || state == "deactivating" {
			return Nop
		}
		return Reload
	}
	return t
}

// redundant reports whether a job would not change a unit in this state;
// such jobs are dropped from a transaction unless they are the anchor.
func redundant(t Type, state string) bool {
	switch t {
	case Start, VerifyActive:
		return isActive(state)
	case Stop:
		return isInactive(state)
	case Reload:
		return state == "reloading"
	case Restart:
		return state == "activating"
	case Nop:
		return true
	}
	return false
}
