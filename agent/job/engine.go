package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"corral.io/corral/agent/unit"
)

// Graph is the engine's view of the units, implemented by the manager.
// Its methods are called concurrently (from Enqueue callers, the Run loop
// and job goroutines) but never with the engine's lock held, so they may
// take the manager's locks.
type Graph interface {
	// Unit loads a unit on demand. It never returns nil: a unit that does
	// not exist comes back with LoadState not-found.
	Unit(name string) *unit.Unit
	// ActiveState is "active", "reloading", "inactive", "failed",
	// "activating" or "deactivating".
	ActiveState(name string) string
}

// Lister is an optional Graph ability needed by isolate: the names of every
// unit the manager has loaded (at least every unit that is not inactive).
type Lister interface {
	Names() []string
}

// Executor performs jobs on units, implemented by the manager. Each call
// blocks until the operation is complete (for Start: the unit is active per
// its Type=, or the start failed). The ctx is cancelled when the job is
// cancelled, replaced or times out; what that means for a half-done start is
// the executor's decision. A nil error means result done; ErrSkipped,
// ErrAssert, ErrUnsupported, ErrInvalid (possibly wrapped) or a *ResultError
// choose another result; any other error means failed.
type Executor interface {
	Start(ctx context.Context, name string) error
	Stop(ctx context.Context, name string) error
	Reload(ctx context.Context, name string) error
}

// Recorder persists installed jobs (the manager plugs the state DB in) so a
// restarted agent can show what was queued. Errors are logged, not fatal.
// It is called with the engine's lock held, so it must not call the Engine.
type Recorder interface {
	PutJob(Info) error
	DeleteJob(id uint64) error
}

// Info describes an installed job, for list-jobs and the state DB.
type Info struct {
	ID      uint64
	Unit    string
	Type    Type
	Mode    Mode
	State   State
	Created time.Time
}

// Option configures an Engine.
type Option func(*Engine)

// WithRecorder persists jobs through r.
func WithRecorder(r Recorder) Option { return func(e *Engine) { e.rec = r } }

// Job is an installed (or finished) job. Its identity (ID, Unit) never
// changes; its type can change while it waits, when another transaction
// merges into it.
type Job struct {
	e       *Engine
	id      uint64
	unit    string
	u       *unit.Unit
	mode    Mode
	created time.Time
	done    chan struct{}

	// guarded by e.mu
	typ         Type
	state       State
	result      Result
	err         error
	warnings    []string
	ignoreOrder bool
	finished    bool
	rerun       bool // merged into while running: run again when the call returns
	parked      bool // waiting for the unit to leave activating/reloading
	queued      bool
	cancel      context.CancelFunc
	timer       *time.Timer
}

// ID is the job's number, unique for the engine's lifetime.
func (j *Job) ID() uint64 { return j.id }

// Unit is the name of the job's unit.
func (j *Job) Unit() string { return j.unit }

// Done is closed when the job has finished.
func (j *Job) Done() <-chan struct{} { return j.done }

// Type is the job's current type.
func (j *Job) Type() Type { j.e.mu.Lock(); defer j.e.mu.Unlock(); return j.typ }

// Result is the job's result, "" until it has finished.
func (j *Job) Result() Result { j.e.mu.Lock(); defer j.e.mu.Unlock(); return j.result }

// Err is the executor's error for a job that did not succeed, if any.
func (j *Job) Err() error { j.e.mu.Lock(); defer j.e.mu.Unlock(); return j.err }

// Warnings are what the transactions that installed or merged into this job
// had to drop (jobs removed to break ordering cycles or conflicts), so that
// the API can show them to the user.
func (j *Job) Warnings() []string {
	j.e.mu.Lock()
	defer j.e.mu.Unlock()
	return slices.Clone(j.warnings)
}

func (j *Job) info() Info {
	return Info{ID: j.id, Unit: j.unit, Type: j.typ, Mode: j.mode, State: j.state, Created: j.created}
}

// Engine holds the installed jobs and runs them.
type Engine struct {
	g   Graph
	x   Executor
	log *slog.Logger
	rec Recorder

	mu        sync.Mutex
	nextID    uint64
	installed map[string]*Job // at most one job per unit
	byID      map[uint64]*Job
	busy      map[string]bool // an executor call is outstanding for the unit
	runq      []*Job
	runCtx    context.Context // nil while Run is not running
	wg        sync.WaitGroup

	wake chan struct{}

	evMu   sync.Mutex
	events []event
}

// event is work for the Run loop that must not happen under the caller's
// locks: unit state changes and follow-up jobs.
type event struct {
	name       string
	old, new   string
	byJob      bool
	onFailure  bool // start OnFailure= of name (job timed out or dependency failed)
	isStateChg bool
}

// New returns an engine over the manager's graph and executor. Jobs are
// installed at once by Enqueue but only run while Run is running.
func New(g Graph, x Executor, log *slog.Logger, opts ...Option) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		g:         g,
		x:         x,
		log:       log,
		installed: make(map[string]*Job),
		byID:      make(map[uint64]*Job),
		busy:      make(map[string]bool),
		wake:      make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run dispatches runnable jobs and processes unit state changes until ctx
// is done. On return every executor call it started has returned (their
// contexts are cancelled and the jobs finish as canceled); jobs still
// waiting stay installed.
func (e *Engine) Run(ctx context.Context) {
	e.mu.Lock()
	e.runCtx = ctx
	e.queueAllLocked()
	e.mu.Unlock()
	e.poke()
	for {
		select {
		case <-ctx.Done():
			e.mu.Lock()
			e.runCtx = nil
			for _, j := range e.byID {
				if j.state == Running && j.cancel != nil {
					j.cancel()
				}
			}
			e.mu.Unlock()
			e.wg.Wait()
			return
		case <-e.wake:
			e.handleEvents(ctx)
			e.dispatch()
		}
	}
}

// Enqueue builds a transaction for job type t on unit name, checks it and
// installs it atomically: either every job is installed, or none and an
// error that names the units involved. It returns the anchor job (possibly
// an installed job the request merged into). Enqueue is the manual entry
// point, so RefuseManualStart=/RefuseManualStop= apply.
func (e *Engine) Enqueue(ctx context.Context, name string, t Type, m Mode) (*Job, error) {
	return e.enqueue(ctx, name, t, m, true)
}

func (e *Engine) enqueue(ctx context.Context, name string, t Type, m Mode, manual bool) (*Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m == "" {
		m = Replace
	}
	if _, err := ParseMode(string(m)); err != nil {
		return nil, err
	}
	tr := newTxn(e.g, e.log)
	u, _ := tr.lookup(name)
	if u.Name != "" && u.Name != name {
		// An alias (default.target → multi-user.target): jobs belong to the
		// unit's real name, which is what every dependency refers to.
		name = u.Name
		u, _ = tr.lookup(name)
	}
	switch t {
	case ReloadOrRestart:
		t = Restart
		if canReload(u) {
			t = ReloadOrStart
		}
	case TryReloadOrRestart:
		t = TryRestart
		if canReload(u) {
			t = TryReload
		}
	case Reload, TryReload:
		if u.LoadState == unit.LoadLoaded && !canReload(u) {
			return nil, fmt.Errorf("%s %s: %w", t, name, ErrNotApplicable)
		}
	case Start, VerifyActive, Stop, Restart, ReloadOrStart, TryRestart, Nop:
	default:
		return nil, fmt.Errorf("job type %q for %s: %w", t, name, ErrNotApplicable)
	}
	if manual {
		if u.RefuseManualStart && (t == Start || t == Restart || t == TryRestart || t == ReloadOrStart) {
			return nil, fmt.Errorf("%s %s: RefuseManualStart=yes: %w", t, name, ErrRefused)
		}
		if u.RefuseManualStop && t == Stop {
			return nil, fmt.Errorf("stop %s: RefuseManualStop=yes: %w", name, ErrRefused)
		}
	}
	if m == Isolate && (t != Start || !u.AllowIsolate) {
		return nil, fmt.Errorf("isolate %s: %w (AllowIsolate=no or not a start job)", name, ErrIsolate)
	}
	if err := tr.build(name, t, m); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	j, err := e.installLocked(tr, m)
	if err != nil {
		return nil, err
	}
	e.log.Debug("transaction installed", "unit", name, "type", string(t), "mode", string(m), "job", j.id, "jobs", len(tr.live()))
	return j, nil
}

// installLocked runs the checks that depend on installed jobs and installs
// the transaction.
func (e *Engine) installLocked(tr *txn, m Mode) (*Job, error) {
	conflictsInstalled := func(j *tjob) bool {
		uj := e.installed[j.name]
		if uj == nil {
			return false
		}
		_, ok := merge(uj.typ, j.t)
		return !ok
	}
	// In fail mode, do not stop running units or replace queued jobs for
	// anything the anchor does not need.
	if m == Fail {
		for _, j := range tr.live() {
			if !j.deleted && !j.matters && !j.anchor && ((j.t == Stop && !isInactive(j.state)) || conflictsInstalled(j)) {
				tr.remove(j, true)
			}
		}
		tr.gc()
		tr.computeMatters()
	}
	dropRedundant := func() {
		for _, j := range tr.live() {
			if !j.deleted && !j.anchor && redundant(j.t, j.state) && !conflictsInstalled(j) {
				tr.remove(j, false)
			}
		}
	}
	dropRedundant()
	if err := tr.breakCycles(); err != nil {
		return nil, err
	}
	tr.gc()
	dropRedundant()
	jobs := tr.live()
	if m == Fail {
		for _, j := range jobs {
			if uj := e.installed[j.name]; uj != nil && conflictsInstalled(j) {
				return nil, fmt.Errorf("%w: %s has %s job %d queued, but %s is included in the transaction for %s",
					ErrDestructive, j.name, uj.typ, uj.id, j.t, tr.anchor.name)
			}
		}
	}

	// Apply: nothing below can fail.
	now := time.Now()
	var anchor *Job
	inTr := make(map[string]bool, len(jobs))
	for _, tj := range jobs {
		inTr[tj.name] = true
		if tj.t == Nop {
			// Nop jobs run at once and never occupy the unit's slot.
			j := e.newJobLocked(tj, m, now)
			e.finishLocked(j, Done, nil, false)
			if tj.anchor {
				anchor = j
			}
			continue
		}
		j := e.installOneLocked(tj, m, now)
		if tj.anchor {
			anchor = j
		}
	}
	if m == Isolate || m == Flush {
		for name, j := range e.installed {
			if !inTr[name] {
				e.finishLocked(j, Canceled, nil, false)
			}
		}
	}
	anchor.warnings = append(anchor.warnings, tr.warnings...)
	e.queueAllLocked()
	e.poke()
	return anchor, nil
}

func (e *Engine) newJobLocked(tj *tjob, m Mode, now time.Time) *Job {
	e.nextID++
	return &Job{
		e: e, id: e.nextID, unit: tj.name, u: tj.u, mode: m, created: now,
		done: make(chan struct{}), typ: tj.t, state: Waiting, ignoreOrder: tj.ignoreOrder,
	}
}

// installOneLocked installs one job, merging it into the unit's installed
// job when their types merge and replacing (cancelling) it otherwise.
func (e *Engine) installOneLocked(tj *tjob, m Mode, now time.Time) *Job {
	if uj := e.installed[tj.name]; uj != nil {
		if mt, ok := merge(uj.typ, tj.t); ok {
			switch {
			case uj.state == Waiting:
				uj.typ = mt
			case tj.t != Restart && superset(uj.typ, tj.t):
				// the running job already does it
			default:
				uj.typ = mt
				uj.rerun = true
			}
			uj.ignoreOrder = uj.ignoreOrder && tj.ignoreOrder
			e.record(uj)
			return uj
		}
		e.log.Info("job replaced", "unit", tj.name, "job", uj.id, "type", string(uj.typ), "by", string(tj.t))
		e.finishLocked(uj, Canceled, nil, false)
	}
	j := e.newJobLocked(tj, m, now)
	e.installed[j.unit] = j
	e.byID[j.id] = j
	if d := j.u.JobTimeout; d > 0 {
		j.timer = time.AfterFunc(d, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if !j.finished {
				e.log.Warn("job timed out", "unit", j.unit, "job", j.id, "type", string(j.typ), "timeout", d)
				e.finishLocked(j, Timeout, fmt.Errorf("%s %s: job timed out after %v", j.typ, j.unit, d), true)
				e.poke()
			}
		})
	}
	e.record(j)
	return j
}

func (e *Engine) record(j *Job) {
	if e.rec == nil {
		return
	}
	if err := e.rec.PutJob(j.info()); err != nil {
		e.log.Warn("recording job", "unit", j.unit, "job", j.id, "err", err)
	}
}

// Wait blocks until j has finished or ctx is done.
func (e *Engine) Wait(ctx context.Context, j *Job) (Result, error) {
	select {
	case <-j.done:
		return j.Result(), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Jobs lists the installed jobs by ID (list-jobs).
func (e *Engine) Jobs() []Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Info, 0, len(e.byID))
	for _, j := range e.byID {
		out = append(out, j.info())
	}
	slices.SortFunc(out, func(a, b Info) int { return int64cmp(a.ID, b.ID) })
	return out
}

func int64cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// JobOf returns the job installed for a unit, for status output.
func (e *Engine) JobOf(name string) (Info, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j := e.installed[name]; j != nil {
		return j.info(), true
	}
	return Info{}, false
}

// Cancel finishes an installed job with result canceled. Start jobs that
// require its unit and wait for it fail with result dependency.
func (e *Engine) Cancel(id uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	j := e.byID[id]
	if j == nil {
		return fmt.Errorf("job %d: %w", id, ErrNoSuchJob)
	}
	e.finishLocked(j, Canceled, nil, true)
	e.poke()
	return nil
}

// UnitChanged tells the engine that a unit changed active state; byJob says
// whether one of the engine's jobs caused it. It never blocks: follow-up
// jobs (stopping BindsTo= units, OnFailure=, OnSuccess=) are enqueued by the
// Run loop, so the manager may call it while holding its own locks.
func (e *Engine) UnitChanged(name string, oldState, newState string, byJob bool) {
	e.evMu.Lock()
	e.events = append(e.events, event{name: name, old: oldState, new: newState, byJob: byJob, isStateChg: true})
	e.evMu.Unlock()
	e.poke()
}

func (e *Engine) addEvent(ev event) {
	e.evMu.Lock()
	e.events = append(e.events, ev)
	e.evMu.Unlock()
}

func (e *Engine) handleEvents(ctx context.Context) {
	e.evMu.Lock()
	evs := e.events
	e.events = nil
	e.evMu.Unlock()
	for _, ev := range evs {
		if !ev.isStateChg {
			if ev.onFailure {
				e.startOnFailure(ctx, ev.name)
			}
			continue
		}
		e.mu.Lock()
		if j := e.installed[ev.name]; j != nil && j.parked {
			j.parked = false
			e.queueLocked(j)
		}
		e.mu.Unlock()
		e.followUps(ctx, ev)
	}
}

// followUps are the jobs a unit's own state change implies. A change no
// job asked for (a crash, an automatic restart, activation from outside) is
// applied retroactively to the unit's dependencies, as systemd does: units
// bound to a unit that went down are stopped; a unit that came up pulls in
// its requirements (replace), its wants (fail) and stops what it conflicts
// with.
func (e *Engine) followUps(ctx context.Context, ev event) {
	u := e.g.Unit(ev.name)
	up := func(s string) bool { return isActive(s) || s == "activating" }
	if !ev.byJob && up(ev.old) && !up(ev.new) {
		for _, b := range u.DepsOf(unit.BoundBy) {
			if !isInactive(e.g.ActiveState(b)) {
				e.follow(ctx, b, Stop, Replace, "BindsTo="+ev.name)
			}
		}
	}
	if !ev.byJob && !up(ev.old) && ev.old != "deactivating" && up(ev.new) {
		for _, p := range []struct {
			dep unit.Dep
			t   Type
			m   Mode
		}{
			{unit.Requires, Start, Replace},
			{unit.BindsTo, Start, Replace},
			{unit.Wants, Start, Fail},
			{unit.Conflicts, Stop, Replace},
			{unit.ConflictedBy, Stop, Fail},
		} {
			for _, o := range u.DepsOf(p.dep) {
				st := e.g.ActiveState(o)
				if _, queued := e.JobOf(o); queued || (p.t == Start && up(st)) || (p.t == Stop && isInactive(st)) {
					continue
				}
				e.follow(ctx, o, p.t, p.m, string(p.dep)+"= of "+ev.name)
			}
		}
	}
	if ev.new == "failed" && ev.old != "failed" {
		e.startOnFailure(ctx, ev.name)
	}
	if ev.new == "inactive" && !isInactive(ev.old) {
		for _, o := range u.DepsOf(unit.OnSuccess) {
			e.follow(ctx, o, Start, Replace, "OnSuccess= of "+ev.name)
		}
	}
}

func (e *Engine) startOnFailure(ctx context.Context, name string) {
	u := e.g.Unit(name)
	m, err := ParseMode(u.OnFailureJobMode)
	if err != nil {
		e.log.Warn("bad OnFailureJobMode=, using replace", "unit", name, "err", err)
		m = Replace
	}
	for _, o := range u.DepsOf(unit.OnFailure) {
		e.follow(ctx, o, Start, m, "OnFailure= of "+name)
	}
}

func (e *Engine) follow(ctx context.Context, name string, t Type, m Mode, why string) {
	if _, err := e.enqueue(ctx, name, t, m, false); err != nil {
		e.log.Warn("follow-up job failed", "unit", name, "type", string(t), "reason", why, "err", err)
		return
	}
	e.log.Info("follow-up job enqueued", "unit", name, "type", string(t), "reason", why)
}

var errCanceledByShutdown = errors.New("job engine stopped")
