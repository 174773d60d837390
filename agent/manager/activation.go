package manager

import (
	"context"
	"fmt"
	"os"

	"corral.io/corral/agent/job"
)

// activator lets socket units start the services they trigger through the
// job engine, like any other start request.
type activator struct{ m *Manager }

func (a activator) ActivateService(ctx context.Context, service string) error {
	return a.m.startAndWait(ctx, service)
}

// ActivateInstance loads a new instance of an Accept=yes template with the
// connection attached, then starts it. The instance is dropped from the
// registry when it stops.
func (a activator) ActivateInstance(ctx context.Context, service string, conn *os.File) error {
	m := a.m
	m.mu.Lock()
	if m.lookupLocked(service) != nil {
		m.mu.Unlock()
		conn.Close()
		return fmt.Errorf("instance %s already exists", service)
	}
	u := m.loader.Load(service)
	e := &entry{u: u, own: u.Deps, conn: conn}
	m.units[u.Name] = e
	m.newRuntimeLocked(e)
	m.linkLocked()
	m.mu.Unlock()
	if e.svc == nil {
		m.dropInstance(e)
		return fmt.Errorf("instance %s: %s", service, u.LoadError)
	}
	return m.startAndWait(ctx, service)
}

func (a activator) ServiceActive(service string) bool {
	switch a.m.graphState(service) {
	case "active", "activating", "reloading", "deactivating":
		return true
	}
	return false
}

func (m *Manager) graphState(name string) string { return graph{m}.ActiveState(name) }

// dropInstance forgets a per-connection instance after it stopped.
func (m *Manager) dropInstance(e *entry) {
	name := e.name()
	m.mu.Lock()
	if m.units[name] == e {
		delete(m.units, name)
	}
	m.mu.Unlock()
	if e.conn != nil {
		e.conn.Close()
	}
	if err := m.db.DeleteUnit(name); err != nil {
		m.log.Warn("forget instance", "unit", name, "err", err)
	}
}

func (m *Manager) startAndWait(ctx context.Context, name string) error {
	j, err := m.engine.Enqueue(ctx, name, job.Start, job.Replace)
	if err != nil {
		return err
	}
	r, err := m.engine.Wait(ctx, j)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	if !r.Success() {
		return fmt.Errorf("start %s: job %s: %v", name, r, j.Err())
	}
	return nil
}
