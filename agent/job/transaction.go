package job

import (
	"fmt"
	"log/slog"
	"strings"

	"corral.io/corral/agent/unit"
)

// A transaction is the set of jobs one request needs, built and checked
// before anything is installed so that a request either takes effect whole or
// not at all (systemd's transaction.c). It lives only during Enqueue.
type txn struct {
	g   Graph
	log *slog.Logger

	units  map[string]*tunit // every unit looked at, with its jobs
	names  []string          // units with jobs, in the order they were first added
	anchor *tjob

	// journal of what was added, so that a failed non-required pull can be
	// rolled back (see pull).
	jlog []*tjob
	elog []*edge

	warnings []string
}

// tunit is a unit as the transaction saw it: looked up once, with its
// active state at that moment and its jobs (one per unit after merge).
type tunit struct {
	u     *unit.Unit
	state string
	jobs  []*tjob
}

// tjob is a job inside a transaction, before it is installed.
type tjob struct {
	name        string
	tu          *tunit
	u           *unit.Unit
	t           Type
	state       string // the unit's active state when the transaction was built
	anchor      bool
	matters     bool // reachable from the anchor through required edges
	deleted     bool
	ignoreOrder bool
	pulledBy    []*edge // edges whose obj is this job
	pulls       []*edge // edges whose subj is this job
	mark        uint8   // DFS colour in findCycle
}

// edge records that subj pulled obj into the transaction.
type edge struct {
	subj, obj *tjob
	dep       unit.Dep // why (for messages)
	matters   bool     // obj is required for subj (not Wants=)
	conflict  bool     // pulled by Conflicts=
	dead      bool
}

func newTxn(g Graph, log *slog.Logger) *txn {
	return &txn{
		g:     g,
		log:   log,
		units: make(map[string]*tunit, 256),
	}
}

// lookup loads a unit and its state once per transaction.
func (tr *txn) lookup(name string) (*unit.Unit, string) {
	s := tr.slot(name)
	return s.u, s.state
}

func (tr *txn) slot(name string) *tunit {
	if s := tr.units[name]; s != nil {
		return s
	}
	u := tr.g.Unit(name)
	if u == nil { // a Graph must not do this; be safe anyway
		u = &unit.Unit{Name: name, LoadState: unit.LoadNotFound}
	}
	s := &tunit{u: u, state: tr.g.ActiveState(name)}
	tr.units[name] = s
	return s
}

// jobsOf returns the jobs of a unit without loading it.
func (tr *txn) jobsOf(name string) []*tjob {
	if s := tr.units[name]; s != nil {
		return s.jobs
	}
	return nil
}

// loadErr says why a unit that is not loaded cannot get a job other than stop.
func loadErr(u *unit.Unit) error {
	var base error
	switch u.LoadState {
	case unit.LoadLoaded:
		return nil
	case "", unit.LoadNotFound:
		base = ErrNotFound
	case unit.LoadBadSetting:
		base = ErrBadSetting
	case unit.LoadMasked:
		base = ErrMasked
	default:
		base = ErrLoad
	}
	if u.LoadError != "" {
		return fmt.Errorf("unit %s: %w: %s", u.Name, base, u.LoadError)
	}
	return fmt.Errorf("unit %s: %w", u.Name, base)
}

// canReload is whether a unit has anything to do on reload. Only services
// with ExecReload= have; systemd reports the rest as not applicable.
func canReload(u *unit.Unit) bool {
	return u.Service != nil && len(u.Service.ExecReload) > 0
}

// build expands the anchor request into jobs and resolves conflicts between
// them. What depends on installed jobs happens later, under the engine lock.
func (tr *txn) build(name string, t Type, m Mode) error {
	u, st := tr.lookup(name)
	if t != Stop {
		if err := loadErr(u); err != nil {
			return err
		}
	}
	t = collapse(t, st)
	a := tr.newJob(name, u, st, t)
	a.anchor = true
	a.ignoreOrder = m == IgnoreDependencies
	tr.anchor = a
	if t != Nop && m != IgnoreDependencies && m != IgnoreRequirements {
		if err := tr.expand(a); err != nil {
			return err
		}
	}
	if m == Isolate {
		if err := tr.addIsolate(); err != nil {
			return err
		}
	}
	tr.computeMatters()
	if err := tr.resolveConflicts(); err != nil {
		return err
	}
	tr.merge()
	return nil
}

func (tr *txn) newJob(name string, u *unit.Unit, st string, t Type) *tjob {
	s := tr.slot(name)
	j := &tjob{name: name, tu: s, u: u, t: t, state: st}
	if len(s.jobs) == 0 {
		tr.names = append(tr.names, name)
	}
	s.jobs = append(s.jobs, j)
	tr.jlog = append(tr.jlog, j)
	return j
}

func (tr *txn) link(subj, obj *tjob, dep unit.Dep, matters, conflict bool) {
	e := &edge{subj: subj, obj: obj, dep: dep, matters: matters, conflict: conflict}
	subj.pulls = append(subj.pulls, e)
	obj.pulledBy = append(obj.pulledBy, e)
	tr.elog = append(tr.elog, e)
}

// pull adds a job of type t for unit name on behalf of by. A pull that is
// not required (Wants=, ConflictedBy=) and fails is rolled back whole and
// only logged, as systemd does; a required one fails the transaction with an
// error that names both units.
func (tr *txn) pull(by *tjob, dep unit.Dep, t Type, name string, matters, optional bool) error {
	jl, el := len(tr.jlog), len(tr.elog)
	err := tr.add(by, dep, t, name, matters)
	if err == nil {
		return nil
	}
	if optional {
		tr.rollback(jl, el)
		tr.log.Debug("ignoring dependency job", "unit", by.name, "dep", string(dep), "other", name, "err", err)
		return nil
	}
	return fmt.Errorf("%s has %s=%s: %w", by.name, dep, name, err)
}

func (tr *txn) add(by *tjob, dep unit.Dep, t Type, name string, matters bool) error {
	s := tr.slot(name)
	u, st := s.u, s.state
	if t != Stop {
		if err := loadErr(u); err != nil {
			return err
		}
	}
	if t = collapse(t, st); t == Nop {
		return nil
	}
	for _, j := range s.jobs {
		if j.t == t && !j.deleted {
			tr.link(by, j, dep, matters, dep == unit.Conflicts || dep == unit.ConflictedBy)
			return nil
		}
	}
	j := tr.newJob(name, u, st, t)
	tr.link(by, j, dep, matters, dep == unit.Conflicts || dep == unit.ConflictedBy)
	return tr.expand(j)
}

// rollback undoes every job and edge added since the journal marks. Both are
// always the last elements of the lists they were appended to, because they
// are removed in reverse order of addition.
func (tr *txn) rollback(jl, el int) {
	for i := len(tr.elog) - 1; i >= el; i-- {
		e := tr.elog[i]
		e.subj.pulls = e.subj.pulls[:len(e.subj.pulls)-1]
		e.obj.pulledBy = e.obj.pulledBy[:len(e.obj.pulledBy)-1]
	}
	tr.elog = tr.elog[:el]
	for i := len(tr.jlog) - 1; i >= jl; i-- {
		j := tr.jlog[i]
		j.tu.jobs = j.tu.jobs[:len(j.tu.jobs)-1]
		if len(j.tu.jobs) == 0 {
			tr.names = tr.names[:len(tr.names)-1]
		}
	}
	tr.jlog = tr.jlog[:jl]
}

// startPulls are what a start (or restart) job pulls in: requirements are
// needed by the job, Wants=/Upholds=/ConflictedBy= are best effort.
var startPulls = []struct {
	dep      unit.Dep
	t        Type
	required bool
}{
	{unit.Requires, Start, true},
	{unit.BindsTo, Start, true},
	{unit.Requisite, VerifyActive, true},
	{unit.Wants, Start, false},
	{unit.Upholds, Start, false},
	{unit.Conflicts, Stop, true},
	{unit.ConflictedBy, Stop, false},
}

// stopPulls are the units that a stop (or restart) of a unit also stops (or
// try-restarts): those that require it, are bound to it, or are PartOf= it.
var stopPulls = []unit.Dep{unit.RequiredBy, unit.BoundBy, unit.ConsistsOf, unit.RequisiteOf}

// expand pulls in the jobs that job j implies through the unit's
// dependencies (systemd's transaction_add_job_and_dependencies).
func (tr *txn) expand(j *tjob) error {
	u := j.u
	if j.t == Start || j.t == Restart || j.t == ReloadOrStart {
		for _, p := range startPulls {
			for _, n := range u.DepsOf(p.dep) {
				if err := tr.pull(j, p.dep, p.t, n, p.required, !p.required); err != nil {
					return err
				}
			}
		}
	}
	if j.t == Stop || j.t == Restart {
		pt := Stop
		if j.t == Restart {
			pt = TryRestart
		}
		for _, d := range stopPulls {
			for _, n := range u.DepsOf(d) {
				if err := tr.pull(j, d, pt, n, true, false); err != nil {
					return err
				}
			}
		}
	}
	if j.t == Reload {
		for _, n := range u.DepsOf(unit.PropagatesReloadTo) {
			if ou, _ := tr.lookup(n); !canReload(ou) {
				continue
			}
			if err := tr.pull(j, unit.PropagatesReloadTo, TryReload, n, false, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// addIsolate adds a stop job for every unit that is not inactive and that
// the transaction does not already touch, except IgnoreOnIsolate= units and
// units triggered by a unit that the transaction keeps.
func (tr *txn) addIsolate() error {
	lister, ok := tr.g.(Lister)
	if !ok {
		return fmt.Errorf("isolate %s: graph cannot list units: %w", tr.anchor.name, ErrNotApplicable)
	}
	for _, n := range lister.Names() {
		if len(tr.jobsOf(n)) > 0 {
			continue
		}
		u, st := tr.lookup(n)
		if isInactive(st) || u.IgnoreOnIsolate {
			continue
		}
		keep := false
		for _, o := range u.DepsOf(unit.TriggeredBy) {
			if len(tr.jobsOf(o)) > 0 {
				keep = true
				break
			}
		}
		if keep {
			continue
		}
		if err := tr.pull(tr.anchor, "isolate", Stop, n, true, false); err != nil {
			return err
		}
	}
	return nil
}

// computeMatters marks the jobs that the anchor needs: those reachable from
// it through required edges. Only jobs that do not matter may be dropped to
// resolve a conflict or a cycle.
func (tr *txn) computeMatters() {
	var queue []*tjob
	for _, n := range tr.names {
		for _, j := range tr.jobsOf(n) {
			j.matters = false
		}
	}
	if tr.anchor.deleted {
		return
	}
	tr.anchor.matters = true
	queue = append(queue, tr.anchor)
	for len(queue) > 0 {
		j := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, e := range j.pulls {
			if e.matters && !e.dead && !e.obj.matters && !e.obj.deleted {
				e.obj.matters = true
				queue = append(queue, e.obj)
			}
		}
	}
}

// remove deletes a job from the transaction. With upward set it also
// deletes every job that required it, since those cannot succeed without it.
func (tr *txn) remove(j *tjob, upward bool) {
	if j.deleted {
		return
	}
	j.deleted = true
	l := j.tu.jobs
	for i, k := range l {
		if k == j {
			l = append(l[:i:i], l[i+1:]...)
			break
		}
	}
	j.tu.jobs = l
	for _, e := range j.pulls {
		e.dead = true
	}
	for _, e := range j.pulledBy {
		if e.dead {
			continue
		}
		e.dead = true
		if upward && e.matters {
			tr.log.Debug("deleting job as dependency", "unit", e.subj.name, "type", string(e.subj.t), "of", j.name)
			tr.remove(e.subj, true)
		}
	}
}

// gc removes jobs that nothing pulls in any more (after deletions).
func (tr *txn) gc() {
	var work []*tjob
	for _, n := range tr.names {
		work = append(work, tr.jobsOf(n)...)
	}
	for len(work) > 0 {
		j := work[len(work)-1]
		work = work[:len(work)-1]
		if j.deleted || j.anchor {
			continue
		}
		live := false
		for _, e := range j.pulledBy {
			if !e.dead {
				live = true
				break
			}
		}
		if live {
			continue
		}
		tr.remove(j, false)
		for _, e := range j.pulls {
			work = append(work, e.obj)
		}
	}
}

// pullers names who pulled a job in, for error messages.
func (j *tjob) pullers() string {
	if j.anchor {
		return "requested"
	}
	var s []string
	for _, e := range j.pulledBy {
		if !e.dead {
			s = append(s, fmt.Sprintf("%s=%s of %s", e.dep, j.name, e.subj.name))
		}
	}
	return "pulled in by " + strings.Join(s, ", ")
}

// resolveConflicts drops one of every two jobs on the same unit that cannot
// be merged (start vs stop). It prefers a job the anchor does not need; if
// both are needed the transaction fails.
func (tr *txn) resolveConflicts() error {
	for again := true; again; {
		again = false
		for _, n := range tr.names {
			l := tr.jobsOf(n)
			if len(l) < 2 {
				continue
			}
			a, b := conflicting(l)
			if a == nil {
				continue
			}
			var victim *tjob
			switch {
			case a.matters && b.matters:
				return fmt.Errorf("%w %q and %q for %s (%s; %s): probably contradicting requirement dependencies",
					ErrConflict, a.t, b.t, n, a.pullers(), b.pullers())
			case !a.matters && b.matters:
				victim = a
			case a.matters && !b.matters:
				victim = b
			default:
				// Neither matters: rather drop the stop, unless the stop
				// comes from a Conflicts=, in which case drop the start.
				stop, other := a, b
				if b.t == Stop {
					stop, other = b, a
				}
				victim = stop
				for _, e := range stop.pulledBy {
					if !e.dead && e.conflict {
						victim = other
					}
				}
			}
			// Dropping a stop only means a unit keeps running, which
			// nobody asked for; dropping a start is worth telling.
			if victim.t == Stop {
				tr.log.Debug("dropping conflicting job", "unit", n, "type", string(victim.t))
			} else {
				tr.warn("dropping job %s/%s: it conflicts with job %s/%s", victim.name, victim.t, n, otherOf(a, b, victim).t)
			}
			tr.remove(victim, true)
			if tr.anchor.deleted {
				return fmt.Errorf("%w for %s", ErrConflict, n)
			}
			tr.gc()
			tr.computeMatters()
			again = true
			break
		}
	}
	return nil
}

func otherOf(a, b, x *tjob) *tjob {
	if x == a {
		return b
	}
	return a
}

func conflicting(l []*tjob) (*tjob, *tjob) {
	for i := range l {
		for k := i + 1; k < len(l); k++ {
			if _, ok := merge(l[i].t, l[k].t); !ok {
				return l[i], l[k]
			}
		}
	}
	return nil, nil
}

// merge folds the jobs of each unit into one.
func (tr *txn) merge() {
	for _, n := range tr.names {
		l := tr.jobsOf(n)
		if len(l) < 2 {
			continue
		}
		keep := l[0]
		for _, j := range l[1:] {
			keep.t, _ = merge(keep.t, j.t)
			keep.anchor = keep.anchor || j.anchor
			keep.matters = keep.matters || j.matters
			keep.ignoreOrder = keep.ignoreOrder || j.ignoreOrder
			for _, e := range j.pulls {
				e.subj = keep
				keep.pulls = append(keep.pulls, e)
			}
			for _, e := range j.pulledBy {
				e.obj = keep
				keep.pulledBy = append(keep.pulledBy, e)
			}
			j.deleted = true
			if tr.anchor == j {
				tr.anchor = keep
			}
		}
		if keep.t == ReloadOrStart && !isActive(keep.state) {
			keep.t = Start
		} else if keep.t == ReloadOrStart {
			keep.t = Reload
		}
		keep.tu.jobs = l[:1]
	}
}

// job returns the transaction's job for a unit after merge, or nil.
func (tr *txn) job(name string) *tjob {
	if l := tr.jobsOf(name); len(l) > 0 {
		return l[0]
	}
	return nil
}

func (tr *txn) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	tr.warnings = append(tr.warnings, msg)
	tr.log.Warn("transaction: "+msg, "anchor", tr.anchor.name)
}

// waits reports whether job j must wait for job o, given that j's unit is
// ordered After= o's unit (after=true) or Before= it (after=false). A job
// that stops its unit goes first whatever the direction (systemd's
// job_compare).
func waits(jt, ot Type, jIgnore, oIgnore, after bool) bool {
	if jt == Nop || ot == Nop || jIgnore || oIgnore {
		return false
	}
	if after {
		return !stopish(jt)
	}
	return stopish(ot)
}

// findCycle looks for an ordering cycle among the transaction's jobs and
// returns it in order (each job waits for the next), or nil.
func (tr *txn) findCycle() []*tjob {
	const (
		white = iota
		grey
		black
	)
	var all []*tjob
	for _, n := range tr.names {
		if j := tr.job(n); j != nil {
			j.mark = white
			all = append(all, j)
		}
	}
	type frame struct {
		j    *tjob
		deps [2][]string
		side int
		i    int
	}
	for _, root := range all {
		if root.mark != white {
			continue
		}
		stack := []frame{{j: root, deps: [2][]string{root.u.DepsOf(unit.After), root.u.DepsOf(unit.Before)}}}
		root.mark = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.i >= len(f.deps[f.side]) {
				if f.side == 0 {
					f.side, f.i = 1, 0
					continue
				}
				f.j.mark = black
				stack = stack[:len(stack)-1]
				continue
			}
			n := f.deps[f.side][f.i]
			f.i++
			o := tr.job(n)
			if o == nil || o == f.j || !waits(f.j.t, o.t, f.j.ignoreOrder, o.ignoreOrder, f.side == 0) {
				continue
			}
			switch o.mark {
			case grey:
				var cyc []*tjob
				for k := len(stack) - 1; k >= 0; k-- {
					cyc = append(cyc, stack[k].j)
					if stack[k].j == o {
						break
					}
				}
				// reverse into waiting order: o waits ... waits f.j waits o
				for a, b := 0, len(cyc)-1; a < b; a, b = a+1, b-1 {
					cyc[a], cyc[b] = cyc[b], cyc[a]
				}
				return cyc
			case white:
				o.mark = grey
				stack = append(stack, frame{j: o, deps: [2][]string{o.u.DepsOf(unit.After), o.u.DepsOf(unit.Before)}})
			}
		}
	}
	return nil
}

func describe(cyc []*tjob) string {
	var b strings.Builder
	for _, j := range cyc {
		fmt.Fprintf(&b, "%s/%s → ", j.name, j.t)
	}
	fmt.Fprintf(&b, "%s/%s", cyc[0].name, cyc[0].t)
	return b.String()
}

// breakCycles removes jobs that only Wants= pulled in until the order is
// acyclic, or fails with the cycle when every job on it is needed.
func (tr *txn) breakCycles() error {
	for {
		cyc := tr.findCycle()
		if cyc == nil {
			return nil
		}
		var victim *tjob
		for _, j := range cyc {
			if !j.matters && !j.anchor {
				victim = j
				break
			}
		}
		if victim == nil {
			return fmt.Errorf("%w: %s", ErrCycle, describe(cyc))
		}
		tr.warn("ordering cycle %s: dropped job %s/%s to break it", describe(cyc), victim.name, victim.t)
		tr.remove(victim, true)
		if tr.anchor.deleted {
			return fmt.Errorf("%w: %s", ErrCycle, describe(cyc))
		}
		tr.gc()
		tr.computeMatters()
	}
}

// live returns the remaining jobs, one per unit, in insertion order.
func (tr *txn) live() []*tjob {
	var out []*tjob
	for _, n := range tr.names {
		if j := tr.job(n); j != nil && !j.deleted {
			out = append(out, j)
		}
	}
	return out
}
