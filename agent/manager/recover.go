package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/state"
	"corral.io/corral/agent/unit"
	"corral.io/corral/sysinit"
)

// Crash recovery (issue 7, docs/RECOVERY.md). When the core dies, `corral
// init` restarts it within milliseconds while every service keeps running,
// re-parented to the supervisor. Before the default target is started, the
// new core reads the state DB and re-adopts what the old one left:
//
//   - a service recorded with a main PID that is still the same process
//     (same start time, so a reused PID is never taken for it) goes back to
//     its recorded state with that PID, watched by a pidfd (it is no longer
//     our child; the supervisor reaps it and streams its exit record);
//   - a service whose recorded main PID is gone gets the exit status the
//     supervisor recorded for it, handled like any exit (Restart=,
//     OnFailure=), or result "unknown" if there is no record;
//   - a service with no live recorded main PID whose cgroup holds processes
//     (the core died between spawning and recording) adopts the earliest
//     started of them as its main PID and is running;
//   - targets and slices recorded active are active again; socket units are
//     not adopted (their listening fds died with the core) and are started
//     again by the default target;
//   - a record of a unit no file defines (transient units: CRI containers of
//     the native runtime) is registered as a placeholder transient service
//     under the same name, adopted the same way, so that UnitState answers
//     for it until its owner re-attaches (AdoptTransient).

// recoverGrace is how long an adopted process's exit waits for its record
// from the supervisor before it counts as "unknown". The supervisor reaps on
// SIGCHLD and writes at once, so this only matters when no record comes.
const recoverGrace = 3 * time.Second

// exitBook collects the supervisor's exit records and matches them to the
// processes the core adopted.
type exitBook struct {
	mu      sync.Mutex
	recs    map[int][]sysinit.Record // by PID
	order   []int                    // PIDs in arrival order, for the bound
	eof     bool                     // the stream ended (or there is none)
	changed chan struct{}            // closed and replaced on every record
	f       *os.File
}

// bookMax bounds the records kept: the supervisor's table holds 4096, and
// the live stream only matters for PIDs that are watched right now.
const bookMax = 1 << 16

func newExitBook(f *os.File) *exitBook {
	b := &exitBook{recs: map[int][]sysinit.Record{}, changed: make(chan struct{}), f: f}
	if f == nil {
		b.eof = true
		return b
	}
	go b.read(f)
	return b
}

func (b *exitBook) read(f *os.File) {
	buf := make([]byte, sysinit.RecordSize*170)
	var pending []byte
	for {
		n, err := f.Read(buf)
		pending = append(pending, buf[:n]...)
		var got []sysinit.Record
		for len(pending) >= sysinit.RecordSize {
			var r sysinit.Record
			r.UnmarshalBinary(pending)
			got = append(got, r)
			pending = pending[sysinit.RecordSize:]
		}
		b.mu.Lock()
		for _, r := range got {
			if len(b.recs[r.PID]) == 0 {
				b.order = append(b.order, r.PID)
			}
			b.recs[r.PID] = append(b.recs[r.PID], r)
		}
		for len(b.order) > bookMax {
			delete(b.recs, b.order[0])
			b.order = b.order[1:]
		}
		if err != nil {
			b.eof = true
		}
		if len(got) > 0 || err != nil {
			close(b.changed)
			b.changed = make(chan struct{})
		}
		b.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (b *exitBook) close() {
	if b.f != nil {
		b.f.Close()
	}
}

// lookup returns the record of pid's exit matching start (0 = any).
func (b *exitBook) lookup(pid int, start uint64) (sysinit.Record, bool, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rs := b.recs[pid]
	for i := len(rs) - 1; i >= 0; i-- {
		if r := rs[i]; start == 0 || r.StartTime == 0 || r.StartTime == start {
			return r, true, b.eof, b.changed
		}
	}
	return sysinit.Record{}, false, b.eof, b.changed
}

// await waits up to recoverGrace for pid's exit record.
func (b *exitBook) await(pid int, start uint64, done <-chan struct{}) (reaper.Exit, bool) {
	timeout := time.NewTimer(recoverGrace)
	defer timeout.Stop()
	for {
		r, ok, eof, changed := b.lookup(pid, start)
		if ok {
			t := r.Time
			if t.IsZero() {
				t = time.Now()
			}
			return reaper.Exit{PID: pid, Status: r.Status, Time: t}, true
		}
		if eof {
			return reaper.Exit{PID: pid, Status: service.StatusUnknown, Time: time.Now()}, true
		}
		select {
		case <-changed:
		case <-timeout.C:
			return reaper.Exit{PID: pid, Status: service.StatusUnknown, Time: time.Now()}, true
		case <-done:
			return reaper.Exit{}, false
		}
	}
}

// WatchPID implements service.PIDWatcher with a pidfd: the kernel makes it
// readable when the process exits, whoever its parent is; the status then
// comes from the supervisor's record.
func (b *exitBook) WatchPID(pid int, start uint64) (<-chan reaper.Exit, func()) {
	ch := make(chan reaper.Exit, 1)
	done := make(chan struct{})
	pf := openPidfd(pid, start)
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			close(done)
			if pf != nil {
				pf.Close()
			}
		})
	}
	go func() {
		if pf != nil && !waitExit(pf, done) {
			return
		}
		if e, ok := b.await(pid, start, done); ok {
			ch <- e
		}
	}()
	return ch, cancel
}

// openPidfd opens a pidfd for pid if it is still the process that started
// at start; nil if it is gone or the PID now names another process. The
// pidfd is opened before the start time is read, so that the fd cannot
// name a process that started after the check.
func openPidfd(pid int, start uint64) *os.File {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil
	}
	if st, err := proc.StartTime(pid); err != nil || (start != 0 && st != start) {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
}

// waitExit blocks until the pidfd is readable (the process exited); false
// if cancelled. The fd sits in the runtime's poller, so a watch costs a
// parked goroutine, not a thread or a timer.
func waitExit(pf *os.File, done <-chan struct{}) bool {
	readable := func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(p, 0)
		return n > 0
	}
	rc, err := pf.SyscallConn()
	if err == nil {
		err = rc.Read(readable)
		if err == nil {
			return true
		}
		if errors.Is(err, os.ErrClosed) {
			return false
		}
	}
	// Not pollable by the runtime (should not happen): poll it ourselves.
	for {
		select {
		case <-done:
			return false
		default:
		}
		p := []unix.PollFd{{Fd: int32(pf.Fd()), Events: unix.POLLIN}}
		if n, _ := unix.Poll(p, 500); n > 0 {
			return true
		}
	}
}

// recoverUnits re-adopts what the previous core left running (see the top
// of this file). It runs in Run before the default target is started and
// before the API accepts jobs, and reports what it did in one log line. It
// returns whether the DB described units of a previous core.
func (m *Manager) recoverUnits(ctx context.Context) bool {
	recs, err := m.db.Units()
	if err != nil {
		m.log.Error("recovery: read unit records; starting from scratch", "err", err)
		return false
	}
	t0 := time.Now()
	var adopted, restored, placeholders, strays int
	done := map[string]bool{}
	for _, r := range recs {
		if ctx.Err() != nil {
			return false
		}
		e := m.recoverEntry(r)
		if e == nil {
			continue
		}
		done[e.name()] = true
		switch {
		case e.svc != nil:
			if e.unit().Transient {
				placeholders++
			}
			if e.svc.Adopt(adoption(r), m.watcher()) {
				adopted++
			} else {
				restored++
			}
		case e.sock != nil:
			// Its listening fds died with the old core: listen again
			// (Run starts it once the engine runs), so that socket
			// activation keeps working after a restart of the core.
			if r.ActiveState == "active" {
				m.relisten = append(m.relisten, e.name())
			}
		case r.ActiveState == "active":
			switch e.unit().Type {
			case unit.TypeTarget, unit.TypeSlice:
				e.setActive("active")
				restored++
			}
		}
	}
	for _, e := range m.entries() {
		if e.svc == nil || e.unit().Transient {
			continue
		}
		if st := e.svc.Status(); st.MainPID != 0 || (st.ActiveState != "inactive" && st.ActiveState != "failed") {
			continue
		}
		if pid, start := m.strayMain(e); pid > 0 && e.svc.AdoptStray(pid, start, m.watcher()) {
			m.log.Warn("recovery: adopted an unrecorded process found in the unit's cgroup", "unit", e.name(), "pid", pid)
			strays++
		}
	}
	go m.reclaimLogs(m.adoptedMains())
	m.log.Info("recovery done", "records", len(recs), "adopted", adopted, "restored", restored,
		"placeholders", placeholders, "strays", strays, "took", time.Since(t0))
	return adopted+restored > 0
}

// recoverEntry finds (or, for a unit no file defines, creates) the entry a
// record belongs to.
func (m *Manager) recoverEntry(r state.UnitRecord) *entry {
	if e := m.lookup(r.Name); e != nil && e.unit().LoadState == unit.LoadLoaded {
		return e
	}
	if unit.TypeOf(r.Name) != unit.TypeService {
		return nil
	}
	if strings.Contains(r.Name, "@") { // an instance of a template file
		if e := m.get(r.Name); e.unit().LoadState == unit.LoadLoaded {
			return e
		}
	}
	if r.InvocationID == "" {
		return nil // never ran under a core: nothing to show or adopt
	}
	u := m.ParseTransient(r.Name, placeholderText)
	if err := m.AddTransient(u, TransientOptions{Cgroup: r.Cgroup}); err != nil {
		m.log.Warn("recovery: placeholder for an unknown unit", "unit", r.Name, "err", err)
		return nil
	}
	return m.lookup(r.Name)
}

// placeholderText is the unit of a recovered record that no file defines.
// KillMode=process: its cgroup may belong to another hierarchy base (a CRI
// pod's), so only its main process is ever signalled.
const placeholderText = `[Unit]
Description=Unit re-adopted after a restart of the core
[Service]
Type=simple
KillMode=process
`

func adoption(r state.UnitRecord) service.Adoption {
	return service.Adoption{
		SubState: service.SubState(r.SubState), Result: service.Result(r.Result),
		MainPID: r.MainPID, MainPIDStart: r.MainPIDStart, ControlPID: r.ControlPID, ControlPIDStart: r.ControlPIDStart,
		InvocationID: r.InvocationID, ExecMainCode: r.ExecMainCode, ExecMainStatus: r.ExecMainStatus,
		NRestarts: r.NRestarts, StatusText: r.StatusText, Since: r.StateChange,
	}
}

// strayMain returns the earliest started process in the unit's own cgroup
// (membership hierarchy), if any.
func (m *Manager) strayMain(e *entry) (int, uint64) {
	dir := m.cg.Path("", unitCgroup(e.unit()))
	if dir == "" {
		return 0, 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil || len(b) == 0 {
		return 0, 0
	}
	best, bestStart := 0, uint64(0)
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		st, err := proc.StartTime(pid)
		if err != nil {
			continue
		}
		if best == 0 || st < bestStart {
			best, bestStart = pid, st
		}
	}
	return best, bestStart
}

// errNotPlaceholder is returned by AdoptTransient for a name that is taken
// by a unit that was not re-adopted from a record.
var errNotPlaceholder = errors.New("unit is not a recovered placeholder")

// AdoptTransient is AddTransient for a unit whose processes outlived a
// restart of the core: the runtime that owns it (native) calls it on start
// with the unit it would have created. If recovery registered a placeholder
// under that name, the placeholder is replaced by u with opts, keeping its
// state and re-watching its processes; otherwise it is AddTransient. The
// returned bool tells whether a placeholder was taken over.
func (m *Manager) AdoptTransient(u *unit.Unit, opts TransientOptions) (bool, error) {
	m.mu.Lock()
	e := m.units[u.Name]
	m.mu.Unlock()
	if e == nil || e.svc == nil {
		return false, m.AddTransient(u, opts)
	}
	if !e.unit().Transient || e.unit().Description != "Unit re-adopted after a restart of the core" {
		return false, fmt.Errorf("transient unit %s: %w", u.Name, errNotPlaceholder)
	}
	st := e.svc.Release()
	m.mu.Lock()
	delete(m.units, u.Name)
	m.mu.Unlock()
	if err := m.AddTransient(u, opts); err != nil {
		return false, err
	}
	n := m.lookup(u.Name)
	n.svc.Adopt(service.Adoption{
		SubState: st.SubState, Result: st.Result, MainPID: st.MainPID, MainPIDStart: st.MainPIDStart,
		ControlPID: st.ControlPID, ControlPIDStart: st.ControlPIDStart, InvocationID: st.InvocationID,
		ExecMainCode: st.ExecMainCode, ExecMainStatus: st.ExecMainStatus, NRestarts: st.NRestarts,
		StatusText: st.StatusText, Since: st.Since,
	}, m.watcher())
	return true, nil
}
