package job

import (
	"context"
	"fmt"
	"log/slog"

	"corral.io/corral/agent/unit"
)

func (e *Engine) queueLocked(j *Job) {
	if j == nil || j.queued || j.finished {
		return
	}
	j.queued = true
	e.runq = append(e.runq, j)
}

func (e *Engine) queueAllLocked() {
	for _, j := range e.installed {
		if j.state == Waiting && !j.parked {
			e.queueLocked(j)
		}
	}
}

// queueNeighboursLocked queues the jobs whose runnability may have changed
// because the job on u finished: those of units ordered against it.
func (e *Engine) queueNeighboursLocked(j *Job) {
	for _, d := range []unit.Dep{unit.After, unit.Before} {
		for _, n := range j.u.DepsOf(d) {
			e.queueLocked(e.installed[n])
		}
	}
	e.queueLocked(e.installed[j.unit])
}

// dispatch starts every queued job whose ordering predecessors have
// finished. A job that is not runnable yet is queued again when a job it
// waits for finishes.
func (e *Engine) dispatch() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runCtx == nil {
		return
	}
	q := e.runq
	e.runq = nil
	for _, j := range q {
		j.queued = false
		if j.finished || j.state != Waiting || j.parked || e.installed[j.unit] != j {
			continue
		}
		if e.runnableLocked(j) {
			e.launchLocked(j)
		}
	}
}

// runnableLocked applies systemd's ordering rule against every installed
// job, not just the ones of the same transaction.
func (e *Engine) runnableLocked(j *Job) bool {
	if e.busy[j.unit] {
		return false
	}
	if j.typ == Nop || j.ignoreOrder {
		return true
	}
	for side, d := range []unit.Dep{unit.After, unit.Before} {
		for _, n := range j.u.DepsOf(d) {
			o := e.installed[n]
			if o == nil || o == j {
				continue
			}
			if waits(j.typ, o.typ, j.ignoreOrder, o.ignoreOrder, side == 0) {
				return false
			}
		}
	}
	return true
}

func (e *Engine) launchLocked(j *Job) {
	ctx, cancel := context.WithCancel(e.runCtx)
	j.cancel = cancel
	j.state = Running
	e.busy[j.unit] = true
	e.record(j)
	t := j.typ
	e.wg.Add(1)
	go e.execute(e.runCtx, ctx, j, t)
}

// outcome of one executor step.
type outcome int

const (
	finished outcome = iota
	park             // wait for the unit to leave activating/reloading
	again            // run the job again (restart after its stop phase)
)

// execute performs one step of job j of type t and then settles the job.
// It runs without the engine lock.
func (e *Engine) execute(runCtx, ctx context.Context, j *Job, t Type) {
	defer e.wg.Done()
	res, err, out := e.step(ctx, j, t)
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.poke()
	j.cancel()
	delete(e.busy, j.unit)
	// The unit is free again and the job's type may have changed (restart
	// becomes start), so what waited on it may run now.
	e.queueNeighboursLocked(j)
	if j.finished {
		return // cancelled, replaced or timed out meanwhile
	}
	if runCtx.Err() != nil && (out != finished || !res.Success()) {
		// Run stopped under it: the executor was interrupted.
		if out != finished {
			j.state = Waiting // not started yet in its new phase; stays installed
			return
		}
		e.finishLocked(j, Canceled, errCanceledByShutdown, false)
		return
	}
	j.state = Waiting
	switch {
	case out == park:
		j.parked = true
		return
	case out == again:
		j.typ = Start
		j.rerun = false
		e.record(j)
		e.queueLocked(j)
		return
	case j.rerun && res.Success():
		j.rerun = false
		e.queueLocked(j)
		return
	}
	e.finishLocked(j, res, err, true)
}

// step decides what job type t means for the unit's current state and
// calls the executor when there is something to do.
func (e *Engine) step(ctx context.Context, j *Job, t Type) (Result, error, outcome) {
	st := e.g.ActiveState(j.unit)
	if t == ReloadOrStart {
		t = Start
		if isActive(st) {
			t = Reload
		}
	}
	switch t {
	case Nop:
		return Done, nil, finished
	case Start:
		if isActive(st) {
			return Done, nil, finished
		}
		err := e.x.Start(ctx, j.unit)
		return resultOf(err), err, finished
	case VerifyActive:
		switch {
		case isActive(st):
			return Done, nil, finished
		case st == "activating":
			return "", nil, park
		}
		return Invalid, fmt.Errorf("unit %s is %s, not active", j.unit, st), finished
	case Reload:
		switch {
		case st == "active":
		case st == "activating" || st == "reloading":
			return "", nil, park
		default:
			return Invalid, fmt.Errorf("cannot reload %s: unit is %s", j.unit, st), finished
		}
		err := e.x.Reload(ctx, j.unit)
		return resultOf(err), err, finished
	case Stop:
		if isInactive(st) {
			return Done, nil, finished
		}
		err := e.x.Stop(ctx, j.unit)
		return resultOf(err), err, finished
	case Restart:
		if !isInactive(st) {
			if err := e.x.Stop(ctx, j.unit); err != nil {
				return resultOf(err), err, finished
			}
		}
		return Done, nil, again
	}
	return Invalid, fmt.Errorf("job type %s for %s: %w", t, j.unit, ErrNotApplicable), finished
}

// finishLocked ends a job with a result. With recursive set, a failed start
// fails the waiting start jobs of the units that require it (Requires=,
// BindsTo=, Requisite=) with result dependency, transitively; Wants= does
// not propagate. Jobs that timed out or failed on a dependency start the
// unit's OnFailure= units, since the unit itself may never enter failed.
func (e *Engine) finishLocked(j *Job, res Result, err error, recursive bool) {
	if j.finished {
		return
	}
	j.finished = true
	j.result = res
	j.err = err
	j.parked = false
	if j.timer != nil {
		j.timer.Stop()
	}
	if j.cancel != nil {
		j.cancel()
	}
	if e.installed[j.unit] == j {
		delete(e.installed, j.unit)
	}
	if _, ok := e.byID[j.id]; ok {
		delete(e.byID, j.id)
		if e.rec != nil {
			if rerr := e.rec.DeleteJob(j.id); rerr != nil {
				e.log.Warn("deleting job record", "unit", j.unit, "job", j.id, "err", rerr)
			}
		}
	}
	lvl := slogLevel(res)
	e.log.Log(context.Background(), lvl, "job finished", "unit", j.unit, "job", j.id, "type", string(j.typ), "result", string(res), "err", err)
	close(j.done)
	e.queueNeighboursLocked(j)

	if res.Success() || !recursive {
		return
	}
	var deps []unit.Dep
	switch j.typ {
	case Start, VerifyActive, ReloadOrStart:
		deps = []unit.Dep{unit.RequiredBy, unit.BoundBy, unit.RequisiteOf}
	case Stop:
		deps = []unit.Dep{unit.Conflicts, unit.ConflictedBy}
	}
	for _, d := range deps {
		for _, n := range j.u.DepsOf(d) {
			o := e.installed[n]
			if o == nil || o.state != Waiting || !(o.typ == Start || o.typ == VerifyActive || o.typ == ReloadOrStart) {
				continue
			}
			e.finishLocked(o, Dependency, fmt.Errorf("%s: dependency %s failed: %s %s: %s", o.unit, j.unit, j.typ, j.unit, res), true)
		}
	}
	if res == Timeout || res == Dependency {
		e.addEvent(event{name: j.unit, onFailure: true})
	}
}

func slogLevel(r Result) slog.Level {
	switch r {
	case Done, Skipped:
		return slog.LevelDebug
	case Canceled:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
