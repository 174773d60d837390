package manager

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"corral.io/corral/agent/cgroup"
	"corral.io/corral/agent/job"
	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/unit"
)

// Transient units are services created at run time, not from a unit file:
// the native runtime's CRI containers. They live in the same registry as
// every other unit, so `corralctl list-units`, `status`, `logs` and the job
// engine treat them alike; only their creation and removal are separate.

// ErrUnitExists is returned when a transient unit's name is already taken.
var ErrUnitExists = errors.New("unit already exists")

// ErrNoUnit is returned for a transient operation on a unit that is not
// loaded.
var ErrNoUnit = errors.New("no such unit")

// TransientOptions are the settings of a transient service that no unit
// directive expresses.
type TransientOptions struct {
	// Cgroups and Cgroup place the service in a cgroup outside Corral's
	// slices (a CRI pod's cgroup under kubelet's cgroup_parent): Cgroup is
	// relative to Cgroups' base (a cgroup.Manager made with base "" takes
	// paths from the hierarchy root). Nil Cgroups means Corral's own
	// manager; "" Cgroup means the unit's slice, as for any service.
	Cgroups service.Cgroups
	Cgroup  string
	// LogMirror receives every line of the unit's stdout/stderr (the CRI
	// container log); the lines still go to Corral's log store.
	LogMirror logs.Mirror
	// Adjust changes every spawned process's spec (namespaces to join,
	// a stdin pipe); see service.Deps.Adjust.
	Adjust func(sp *proc.Spec, kind string, main bool)
	// OnChange is called after the manager persisted each state change, in
	// order (exit codes and events for the CRI). It must not block on the
	// unit itself.
	OnChange func(old, new service.Status)
}

// ParseTransient builds a transient unit from unit-file text with the same
// parser, defaults and checks as a file. Callers then set what text cannot
// carry safely (argv, environment) on the returned unit's Service.
func (m *Manager) ParseTransient(name, text string) *unit.Unit {
	return m.loader.ParseString(name, text)
}

// AddTransient registers u (a service unit, inactive) without starting it.
func (m *Manager) AddTransient(u *unit.Unit, opts TransientOptions) error {
	if u.Type != unit.TypeService || u.Service == nil {
		return fmt.Errorf("transient unit %s: only services can be transient", u.Name)
	}
	if u.LoadState != unit.LoadLoaded {
		return fmt.Errorf("transient unit %s: %s", u.Name, u.LoadError)
	}
	u.Transient = true
	if opts.Cgroup != "" {
		// It lives outside Corral's slices, so it needs none of them.
		u.Deps = map[unit.Dep][]string{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.lookupLocked(u.Name); e != nil && e.unit().LoadState != unit.LoadNotFound {
		return fmt.Errorf("transient unit %s: %w", u.Name, ErrUnitExists)
	}
	if opts.LogMirror != nil {
		if err := m.logs.SetMirror(u.Name, opts.LogMirror); err != nil {
			return fmt.Errorf("transient unit %s: %w", u.Name, err)
		}
	}
	e := &entry{u: u, own: u.Deps}
	d := m.serviceDeps(e)
	if opts.Cgroup != "" {
		d.Cgroup = opts.Cgroup
		if opts.Cgroups != nil {
			d.Cgroups = opts.Cgroups
		}
	}
	d.Adjust = opts.Adjust
	if opts.OnChange != nil {
		name, persist := u.Name, d.OnChange
		d.OnChange = func(old, st service.Status) {
			persist(old, st)
			if m.isTransient(name) {
				opts.OnChange(old, st)
			}
		}
	}
	e.svc = service.New(u, d)
	delete(m.aliases, u.Name)
	m.units[u.Name] = e
	m.linkLocked()
	return nil
}

// isTransient tells whether name is (still) a registered transient unit.
func (m *Manager) isTransient(name string) bool {
	e := m.lookup(name)
	return e != nil && e.unit().Transient
}

// StartTransient registers u and starts it through the job engine,
// returning when the start job finished (for Type=exec: after the execve).
// A unit whose start failed stays registered (failed), so that its status
// can still be read; remove it with RemoveTransient.
func (m *Manager) StartTransient(ctx context.Context, u *unit.Unit, opts TransientOptions) error {
	if err := m.AddTransient(u, opts); err != nil {
		return err
	}
	return m.StartUnit(ctx, u.Name)
}

// StartUnit starts a loaded unit through the job engine and waits for the
// job.
func (m *Manager) StartUnit(ctx context.Context, name string) error {
	if m.lookup(name) == nil {
		return fmt.Errorf("start %s: %w", name, ErrNoUnit)
	}
	if err := m.running(name); err != nil {
		return err
	}
	return m.startAndWait(ctx, name)
}

func (m *Manager) running(name string) error {
	select {
	case <-m.ready:
	default:
		return fmt.Errorf("unit %s: manager is not running yet", name)
	}
	if m.runCtx.Err() != nil {
		return fmt.Errorf("unit %s: %w", name, errStopping)
	}
	return nil
}

// StopUnit stops a unit through the job engine and waits. A timeout > 0
// replaces a service's TimeoutStopSec= for this stop (the CRI's grace
// period); 0 keeps the unit's own. Stopping an inactive or unknown unit is
// not an error.
func (m *Manager) StopUnit(ctx context.Context, name string, timeout time.Duration) error {
	e := m.lookup(name)
	if e == nil {
		return nil
	}
	if st := e.activeState(); st == "inactive" || st == "failed" {
		return nil
	}
	if err := m.running(name); err != nil {
		return err
	}
	if timeout > 0 && e.svc != nil {
		u := *e.unit()
		svc := *u.Service
		svc.TimeoutStopSec = timeout
		u.Service = &svc
		e.svc.Update(&u)
	}
	j, err := m.engine.Enqueue(ctx, name, job.Stop, job.Replace)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	r, err := m.engine.Wait(ctx, j)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	if !r.Success() {
		return fmt.Errorf("stop %s: job %s: %v", name, r, j.Err())
	}
	return nil
}

// KillUnit signals the processes of a unit (whom: "main", "control" or
// "all"), as `corralctl kill` does.
func (m *Manager) KillUnit(name, whom string, sig syscall.Signal) error {
	e := m.lookup(name)
	if e == nil || e.svc == nil {
		return fmt.Errorf("kill %s: %w", name, ErrNoUnit)
	}
	return e.svc.Kill(whom, sig)
}

// RemoveTransient forgets a transient unit that is no longer active: its
// registry entry, its state record and its log mirror (its log in the store
// stays, for `corralctl logs`). Removing an unknown unit is not an error.
func (m *Manager) RemoveTransient(name string) error {
	m.mu.Lock()
	e := m.units[name]
	if e == nil {
		m.mu.Unlock()
		return nil
	}
	if !e.unit().Transient {
		m.mu.Unlock()
		return fmt.Errorf("remove %s: not a transient unit", name)
	}
	switch e.activeState() {
	case "inactive", "failed":
	default:
		m.mu.Unlock()
		return fmt.Errorf("remove %s: unit is %s, stop it first", name, e.activeState())
	}
	delete(m.units, name)
	m.linkLocked()
	m.mu.Unlock()
	if err := m.logs.SetMirror(name, nil); err != nil && !errors.Is(err, logs.ErrClosed) {
		m.log.Warn("drop log mirror", "unit", name, "err", err)
	}
	if err := m.db.DeleteUnit(name); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// UnitState is the state of a loaded service unit; false if there is none.
func (m *Manager) UnitState(name string) (service.Status, bool) {
	e := m.lookup(name)
	if e == nil || e.svc == nil {
		return service.Status{}, false
	}
	return e.svc.Status(), true
}

// Cgroups is Corral's own cgroup manager (paths under its cgroup base).
func (m *Manager) Cgroups() cgroup.Manager { return m.cg }

// Spawner starts processes through the trampoline, for work that is no
// unit (a CRI ExecSync, a pod's namespace holder).
func (m *Manager) Spawner() *proc.Spawner { return m.spawn }

// Reaper delivers the exits of spawned processes; nothing else may wait for
// them.
func (m *Manager) Reaper() *reaper.Reaper { return m.reaper }

// LogStore is the unit log store.
func (m *Manager) LogStore() *logs.Store { return m.logs }
