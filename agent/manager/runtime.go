package manager

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"corral.io/corral/agent/job"
	"corral.io/corral/agent/notify"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/state"
	"corral.io/corral/agent/unit"
)

// graph is the job engine's view of the units.
type graph struct{ m *Manager }

func (g graph) Unit(name string) *unit.Unit { return g.m.get(name).unit() }

// Names lists every loaded unit, for isolate.
func (g graph) Names() []string {
	es := g.m.entries()
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.name()
	}
	return out
}

func (g graph) ActiveState(name string) string {
	if e := g.m.lookup(name); e != nil {
		return e.activeState()
	}
	return "inactive"
}

// executor runs jobs against the units' state machines.
type executor struct{ m *Manager }

func (x executor) Start(ctx context.Context, name string) error {
	e := x.m.get(name)
	u := e.unit()
	if err := x.m.checkConditions(u); err != nil {
		x.m.logs.Append(u.Name, "core", err.Error())
		return err
	}
	switch u.Type {
	case unit.TypeService:
		if e.svc == nil {
			return fmt.Errorf("unit %s has no service configuration: %w", name, job.ErrInvalid)
		}
		return e.svc.Start(ctx)
	case unit.TypeSocket:
		if e.sock == nil {
			return fmt.Errorf("unit %s has no socket configuration: %w", name, job.ErrInvalid)
		}
		err := e.sock.Start(ctx)
		x.m.persistSimple(e)
		return err
	case unit.TypeSlice:
		if p := sliceCgroup(u.Name); p != "" {
			if err := x.m.cg.Create(p); err != nil {
				return fmt.Errorf("slice %s: %w", name, err)
			}
			if u.Slice != nil {
				if err := x.m.cg.Apply(p, u.Slice.Resources); err != nil {
					return fmt.Errorf("slice %s: %w", name, err)
				}
			}
		}
		e.setActive("active")
	case unit.TypeTarget:
		e.setActive("active")
	case unit.TypeMount:
		if err := x.m.startMount(ctx, u); err != nil {
			return err
		}
		e.setActive("active")
	case unit.TypeDevice:
		if err := devicepresent(x.m.cfg.Root, u.Name); err != nil {
			return err
		}
		e.setActive("active")
	default:
		return &job.ResultError{Result: job.Unsupported, Err: fmt.Errorf("unit %s: %s units are not supported yet", name, u.Type)}
	}
	x.m.logs.Append(u.Name, "core", "Reached "+describe(u)+".")
	x.m.persistSimple(e)
	return nil
}

func (x executor) Stop(ctx context.Context, name string) error {
	e := x.m.get(name)
	u := e.unit()
	switch {
	case e.svc != nil:
		return e.svc.Stop(ctx)
	case e.sock != nil:
		err := e.sock.Stop(ctx)
		x.m.persistSimple(e)
		return err
	}
	if u.Type == unit.TypeMount {
		if err := x.m.stopMount(ctx, u); err != nil {
			return err
		}
	}
	if u.Type == unit.TypeSlice {
		if p := sliceCgroup(u.Name); p != "" {
			if err := x.m.cg.Remove(p); err != nil {
				x.m.log.Warn("remove slice cgroup", "unit", name, "err", err)
			}
		}
	}
	if e.activeState() != "inactive" {
		e.setActive("inactive")
		x.m.logs.Append(u.Name, "core", "Stopped "+describe(u)+".")
		x.m.persistSimple(e)
	}
	return nil
}

func (x executor) Reload(ctx context.Context, name string) error {
	e := x.m.get(name)
	if e.svc != nil {
		return e.svc.Reload(ctx)
	}
	return nil // targets, slices and sockets have nothing to reload
}

func describe(u *unit.Unit) string {
	if u.Description != "" {
		return u.Description
	}
	return u.Name
}

// serviceDeps wires a service to the manager's machinery.
func (m *Manager) serviceDeps(e *entry) service.Deps {
	u := e.u
	name := u.Name
	return service.Deps{
		Spawner:      m.spawn,
		Reaper:       m.reaper,
		Cgroups:      m.cg,
		Logs:         m.logs,
		Log:          m.log,
		Root:         m.cfg.Root,
		NotifySocket: m.notify.Path(),
		Cgroup:       unitCgroup(u),
		OnChange:     func(old, new service.Status) { m.serviceChanged(name, old, new) },
		RequestRestart: func(name string) {
			go func() {
				if _, err := m.engine.Enqueue(m.runCtx, name, job.Restart, job.Replace); err != nil {
					m.log.Error("auto-restart", "unit", name, "err", err)
				}
			}()
		},
		SocketFiles: func() ([]*os.File, []string) { return m.socketFiles(name) },
		Conn:        e.conn,
	}
}

// serviceChanged persists a service's new state before anything else sees
// it, then lets the engine and triggering sockets react.
func (m *Manager) serviceChanged(name string, old, st service.Status) {
	m.changes.Add(1)
	rec := state.UnitRecord{
		Name: name, ActiveState: st.ActiveState, SubState: string(st.SubState), Result: string(st.Result),
		MainPID: st.MainPID, MainPIDStart: st.MainPIDStart, ControlPID: st.ControlPID, ControlPIDStart: st.ControlPIDStart,
		Cgroup: st.Cgroup, InvocationID: st.InvocationID, ExecMainCode: st.ExecMainCode, ExecMainStatus: st.ExecMainStatus,
		NRestarts: st.NRestarts, StateChange: st.Since, StatusText: st.StatusText,
	}
	if err := m.db.PutUnit(rec); err != nil {
		m.log.Error("persist unit state", "unit", name, "err", err)
	}
	if old.ActiveState == st.ActiveState {
		return
	}
	if m.runCtx != nil {
		m.engine.UnitChanged(name, old.ActiveState, st.ActiveState, st.Job)
	}
	if st.ActiveState == "inactive" || st.ActiveState == "failed" {
		for _, e := range m.entries() {
			if e.sock != nil && e.sock.ServiceName() == name {
				e.sock.ServiceStopped()
			}
			if e.sock != nil && strings.Contains(name, "@") {
				e.sock.InstanceStopped(name)
			}
		}
		if e := m.lookup(name); e != nil && e.conn != nil {
			m.dropInstance(e)
		}
	}
}

// persistSimple records the state of a unit without its own state machine
// callbacks (targets, slices, sockets).
func (m *Manager) persistSimple(e *entry) {
	m.changes.Add(1)
	u := e.unit()
	st := e.activeState()
	rec := state.UnitRecord{Name: u.Name, ActiveState: st, SubState: m.subState(e), StateChange: time.Now()}
	if err := m.db.PutUnit(rec); err != nil {
		m.log.Error("persist unit state", "unit", u.Name, "err", err)
	}
}

func (m *Manager) subState(e *entry) string {
	switch {
	case e.svc != nil:
		return string(e.svc.Status().SubState)
	case e.sock != nil:
		return e.sock.Status().SubState
	case e.activeState() == "active":
		return "active"
	}
	return "dead"
}

// socketFiles collects the listening fds of the socket units that trigger a
// service (Service= pointing at it, or the service's Sockets=).
func (m *Manager) socketFiles(service string) ([]*os.File, []string) {
	var files []*os.File
	var names []string
	want := map[string]bool{}
	if e := m.lookup(service); e != nil {
		if s := e.unit().Service; s != nil {
			for _, n := range s.Sockets {
				want[n] = true
			}
		}
	}
	for _, e := range m.entries() {
		if e.sock == nil {
			continue
		}
		if e.sock.ServiceName() != service && !want[e.name()] {
			continue
		}
		f, n := e.sock.Files()
		files = append(files, f...)
		names = append(names, n...)
	}
	return files, names
}

// routeNotify hands an sd_notify datagram to the service it came from: the
// unit whose main or control PID sent it, else the unit whose cgroup holds
// the sender (NotifyAccess=all).
func (m *Manager) routeNotify(msg notify.Message) {
	for _, e := range m.entries() {
		if e.svc == nil {
			continue
		}
		st := e.svc.Status()
		if st.MainPID == msg.PID || st.ControlPID == msg.PID {
			e.svc.Notify(msg)
			return
		}
	}
	if name := unitOfPID(msg.PID); name != "" {
		if e := m.lookup(name); e != nil && e.svc != nil {
			e.svc.Notify(msg)
			return
		}
	}
	m.log.Warn("notify message from a process of no known unit", "pid", msg.PID, "msg", msg.Raw)
	for _, f := range msg.FDs {
		f.Close()
	}
}

// unitOfPID reads the unit name from the process's cgroup path (its last
// element that is a unit name).
func unitOfPID(pid int) string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] != "name=systemd" && parts[1] != "pids" && parts[0] != "0" {
			continue
		}
		elems := strings.Split(parts[2], "/")
		for i := len(elems) - 1; i >= 0; i-- {
			if t := unit.TypeOf(elems[i]); t != "" && t != unit.TypeSlice {
				return elems[i]
			}
		}
	}
	return ""
}

// jobRecorder persists jobs in the state DB.
type jobRecorder struct{ db *state.DB }

func (r jobRecorder) PutJob(j job.Info) error {
	return r.db.PutJob(state.JobRecord{ID: j.ID, Unit: j.Unit, Type: string(j.Type), Mode: string(j.Mode), State: string(j.State), Created: j.Created})
}

func (r jobRecorder) DeleteJob(id uint64) error { return r.db.DeleteJob(id) }
