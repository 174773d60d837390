package manager

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"corral.io/corral/agent/service"
	"corral.io/corral/agent/socket"
	"corral.io/corral/agent/unit"
)

// entry is one loaded unit with its runtime object. Services and sockets
// have their own state machines; targets, slices and the unit types Corral
// does not run yet keep a simple state here.
type entry struct {
	mu   sync.Mutex
	u    *unit.Unit
	own  map[unit.Dep][]string // deps as loaded, before inverse deps are added
	svc  *service.Service
	sock *socket.Socket
	// simple state for targets and slices
	active string
	since  time.Time
	// conn is the connection of an Accept=yes instance.
	conn *os.File
}

func (e *entry) name() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.u.Name
}

func (e *entry) unit() *unit.Unit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.u
}

func (e *entry) activeState() string {
	e.mu.Lock()
	svc, sock, st := e.svc, e.sock, e.active
	e.mu.Unlock()
	switch {
	case svc != nil:
		return svc.Status().ActiveState
	case sock != nil:
		return sock.Status().ActiveState
	case st == "":
		return "inactive"
	}
	return st
}

func (e *entry) setActive(st string) {
	e.mu.Lock()
	e.active, e.since = st, time.Now()
	e.mu.Unlock()
}

// entries returns every unit once, sorted by name.
func (m *Manager) entries() []*entry {
	m.mu.RLock()
	out := make([]*entry, 0, len(m.units))
	for _, e := range m.units {
		out = append(out, e)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].u.Name < out[j].u.Name })
	return out
}

// lookup finds a loaded unit by name or alias.
func (m *Manager) lookup(name string) *entry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.lookupLocked(name)
}

func (m *Manager) lookupLocked(name string) *entry {
	if e, ok := m.units[name]; ok {
		return e
	}
	if c, ok := m.aliases[name]; ok {
		return m.units[c]
	}
	return nil
}

// get returns the unit, loading it (and what it references) on first use.
func (m *Manager) get(name string) *entry {
	if e := m.lookup(name); e != nil {
		return e
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.lookupLocked(name); e != nil {
		return e
	}
	e := m.loadLocked(name)
	m.linkLocked()
	return e
}

// loadAll loads every unit on the search path and everything they
// reference, then links inverse dependencies.
func (m *Manager) loadAll() error {
	names, err := m.loader.Names()
	if err != nil {
		return fmt.Errorf("list unit files: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		m.loadLocked(n)
	}
	m.linkLocked()
	return nil
}

// loadLocked loads name and, breadth first, every unit it references.
func (m *Manager) loadLocked(name string) *entry {
	first := m.addLocked(m.loader.Load(name), name)
	queue := []*entry{first}
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		for _, deps := range e.own {
			for _, d := range deps {
				if m.lookupLocked(d) != nil || unit.TypeOf(d) == "" {
					continue
				}
				queue = append(queue, m.addLocked(m.loader.Load(d), d))
			}
		}
	}
	return first
}

// addLocked registers a freshly loaded unit (or updates one on reload).
func (m *Manager) addLocked(u *unit.Unit, asked string) *entry {
	own := make(map[unit.Dep][]string, len(u.Deps))
	for k, v := range u.Deps {
		own[k] = slices.Clone(v)
	}
	e := m.units[u.Name]
	if e == nil {
		e = &entry{u: u, own: own}
		m.units[u.Name] = e
		m.newRuntimeLocked(e)
	} else {
		e.mu.Lock()
		e.u, e.own = u, own
		svc, sock := e.svc, e.sock
		e.mu.Unlock()
		if svc != nil {
			svc.Update(u)
		}
		_ = sock // sockets pick up new settings on their next start
		if svc == nil && sock == nil {
			m.newRuntimeLocked(e)
		}
	}
	for _, a := range u.Aliases {
		if a != u.Name {
			m.aliases[a] = u.Name
		}
	}
	if asked != u.Name {
		m.aliases[asked] = u.Name
	}
	return e
}

// newRuntimeLocked creates the state machine for a unit of a type that has
// one. A unit that failed to load gets none: jobs on it fail in the engine
// with its load error.
func (m *Manager) newRuntimeLocked(e *entry) {
	u := e.u
	if u.LoadState != unit.LoadLoaded {
		return
	}
	switch {
	case u.Type == unit.TypeService && u.Service != nil:
		e.svc = service.New(u, m.serviceDeps(e))
	case u.Type == unit.TypeSocket && u.Socket != nil:
		e.sock = socket.New(u, m.cfg.Root, activator{m}, m.log)
	}
}

// linkLocked rebuilds every unit's Deps from its own deps plus the inverse
// of every other unit's deps on it (unit.FillInverse), so the job engine can
// walk both ways. It works on copies, so that the loaded deps stay pristine
// for the next relink.
func (m *Manager) linkLocked() {
	es := make([]*entry, 0, len(m.units))
	us := make([]*unit.Unit, 0, len(m.units))
	for _, e := range m.units {
		e.mu.Lock()
		u := *e.u
		e.mu.Unlock()
		u.Deps = make(map[unit.Dep][]string, len(e.own))
		for k, v := range e.own {
			u.Deps[k] = slices.Clone(v)
		}
		es = append(es, e)
		us = append(us, &u)
	}
	unit.FillInverse(us)
	for i, e := range es {
		e.mu.Lock()
		e.u = us[i]
		e.mu.Unlock()
	}
}

func (m *Manager) canonicalLocked(name string) string {
	if c, ok := m.aliases[name]; ok {
		return c
	}
	return name
}

// sliceCgroup turns a slice name into its cgroup path: "a-b.slice" lives in
// "a.slice/a-b.slice", and "-.slice" is the root.
func sliceCgroup(slice string) string {
	if slice == "" || slice == "-.slice" {
		return ""
	}
	base := strings.TrimSuffix(slice, ".slice")
	parts := strings.Split(base, "-")
	var path []string
	for i := range parts {
		path = append(path, strings.Join(parts[:i+1], "-")+".slice")
	}
	return strings.Join(path, "/")
}

// unitCgroup is the cgroup of a service or socket unit.
func unitCgroup(u *unit.Unit) string {
	slice := "system.slice"
	switch {
	case u.Service != nil && u.Service.Slice != "":
		slice = u.Service.Slice
	case u.Socket != nil && u.Socket.Slice != "":
		slice = u.Socket.Slice
	}
	if p := sliceCgroup(slice); p != "" {
		return p + "/" + u.Name
	}
	return u.Name
}
