// Package service runs one systemd service unit: the state machine of
// systemd.service(5) (Type=, Exec*= phases, Restart=, timeouts, watchdog,
// sd_notify) on top of the process, cgroup, notify and log packages.
//
// A Service has no goroutine of its own. Every event (a request from the job
// engine, a reaped exit, a timer, an sd_notify datagram) takes the lock,
// moves the state machine, and releases it; state changes are reported to the
// manager in order, outside the lock, through Deps.OnChange.
package service

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unit"
)

// Spawner starts a process; *proc.Spawner satisfies it.
type Spawner interface {
	Start(ctx context.Context, spec *proc.Spec) (int, error)
}

// Reaper delivers exits of PIDs; *reaper.Reaper satisfies it.
type Reaper interface {
	Watch(pid int) <-chan reaper.Exit
	Unwatch(pid int)
}

// Cgroups is the subset of cgroup.Manager a service needs.
type Cgroups interface {
	Create(path string) error
	Apply(path string, r unit.Resources) error
	ProcsFiles(path string) []string
	Pids(path string) ([]int, error)
	Kill(path string, sig syscall.Signal) error
	Remove(path string) error
}

// LogSink is where the unit's output and Corral's lines about it go;
// *logs.Store satisfies it.
type LogSink interface {
	Pipe(unit string, stream logs.Stream) (*os.File, error)
	Append(unit string, stream logs.Stream, msg string) error
}

// Deps is everything a Service needs from the manager. Zero values are
// allowed for the optional hooks.
type Deps struct {
	Spawner Spawner
	Reaper  Reaper
	Cgroups Cgroups // nil: no cgroup (tests); KillMode=control-group then acts like process
	Logs    LogSink // nil: output goes to /dev/null
	Log     *slog.Logger

	// Root prefixes RuntimeDirectory= (<root>/run/X), StateDirectory=
	// (<root>/var/lib/X), CacheDirectory= (<root>/var/cache/X),
	// LogsDirectory= (<root>/var/log/X), ConfigurationDirectory= (<root>/etc/X).
	Root         string
	NotifySocket string // NOTIFY_SOCKET handed to the unit's processes
	Cgroup       string // the unit's cgroup relative to the cgroup base, e.g. "system.slice/foo.service"

	// OnChange is called, in order and outside the service's lock, on every
	// state change; the manager persists it before acknowledging. Start,
	// Stop and Reload return only after OnChange returned for the change
	// that ended them, so OnChange must not itself wait for one of those on
	// the same service (queue follow-up jobs instead).
	OnChange func(old, new Status)
	// RequestRestart asks the manager for a restart job after RestartSec, as
	// systemd does, instead of restarting behind the job engine's back.
	RequestRestart func(name string)
	// SocketFiles returns the listening fds and their names for socket
	// activation (LISTEN_FDS/LISTEN_FDNAMES); nil for none.
	SocketFiles func() ([]*os.File, []string)
	// Conn is the connection of an Accept=yes instance.
	Conn *os.File
	// Adjust, if set, changes the spec of every process the service
	// spawns, after Corral filled it in. Transient units use it for what no
	// unit directive expresses: CRI containers join their pod's namespaces
	// and keep a stdin pipe for attach.
	Adjust func(sp *proc.Spec, kind string, main bool)

	// Now and users are seams for tests.
	Now func() time.Time
}

// Service is one service unit's runtime state.
type Service struct {
	d    Deps
	log  *slog.Logger
	kill func(pid int, sig syscall.Signal) error // syscall.Kill; a seam for fakes

	mu sync.Mutex
	u  *unit.Unit
	st Status

	mainCmd    *cmdRun // ExecStart command of the main process (oneshot: the current one)
	ctlCmd     *cmdRun // control process command in progress
	mainExit   *reaper.Exit
	watches    map[int]chan struct{} // PID → stop watching
	pidw       PIDWatcher            // exits of adopted processes (adopt.go); nil unless adopted
	invocation string

	timer    *time.Timer
	timerGen int
	deadline time.Time
	pollGen  int

	wdTimer *time.Timer
	wdGen   int
	wdUsec  time.Duration // WATCHDOG_USEC= override

	forbidRestart  bool
	notifyReady    bool
	notifyReload   bool
	reloadFailed   error
	startOK        bool        // this start reached active (oneshot: finished)
	restartPending bool        // RequestRestart was called; the next Start is that restart
	starts         []time.Time // for StartLimitBurst

	start, stop, reload *attempt

	pending   []change
	queued    uint64        // seq of the last change queued
	delivered uint64        // seq of the last change OnChange returned from
	deliverCh chan struct{} // closed and replaced on every delivery
	last      Status        // last status queued for OnChange
	post      []func()      // run after unlock, in order (RequestRestart)
	drainMu   sync.Mutex
	inCall    bool // inside the locked part of Start/Stop/Reload
}

type change struct {
	old, new Status
	seq      uint64
}

// cmdRun is one Exec*= list being run, one command after the other.
type cmdRun struct {
	kind string // "ExecStart", "ExecStop", ...
	cmds []unit.Command
	i    int
	next func()       // control: all commands succeeded
	fail func(Result) // control: a command failed
}

func (c *cmdRun) cur() unit.Command { return c.cmds[c.i] }

// attempt is one Start/Stop/Reload in progress, shared by concurrent callers.
type attempt struct {
	done chan struct{}
	err  error
	seq  uint64 // the change that ended it; callers return once it is delivered
}

func newAttempt() *attempt { return &attempt{done: make(chan struct{})} }

func (a *attempt) finish(seq uint64, err error) {
	if a == nil {
		return
	}
	select {
	case <-a.done:
	default:
		a.err = err
		a.seq = seq
		close(a.done)
	}
}

func (a *attempt) wait(ctx context.Context) error {
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// New returns the service for u, inactive. The manager calls it once per
// service unit and keeps it across daemon-reloads (see Update).
func New(u *unit.Unit, d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Service{d: d, u: u, watches: map[int]chan struct{}{}, kill: syscall.Kill, deliverCh: make(chan struct{})}
	s.log = d.Log.With("unit", u.Name)
	s.st = Status{Name: u.Name, ActiveState: ActiveInactive, SubState: Dead, Result: Success, Cgroup: d.Cgroup, Since: d.Now()}
	s.last = s.st
	return s
}

// Status returns a snapshot.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Update replaces the unit configuration (daemon-reload). Running processes
// keep going; the new settings apply from the next command spawned.
func (s *Service) Update(u *unit.Unit) {
	s.lock()
	defer s.unlock()
	s.u = u
}

// ResetFailed forgets a failure and the start-limit counter, as
// `systemctl reset-failed` does.
func (s *Service) ResetFailed() {
	s.lock()
	defer s.unlock()
	s.starts = nil
	s.st.NRestarts = 0
	s.restartPending = false
	if s.st.SubState == Failed {
		s.st.Result = Success
		s.setState(Dead)
	} else {
		s.st.Result = Success
	}
}

func (s *Service) lock() { s.mu.Lock() }

// unlock releases the lock and then delivers queued state changes, so that
// OnChange may call back into the Service (e.g. Status).
func (s *Service) unlock() {
	post := s.post
	s.post = nil
	s.mu.Unlock()
	s.drain()
	for _, f := range post {
		f()
	}
}

// drain delivers queued changes in order. Whoever holds drainMu delivers;
// others leave their changes in the queue for it.
func (s *Service) drain() {
	for {
		if !s.drainMu.TryLock() {
			return
		}
		for {
			s.mu.Lock()
			if len(s.pending) == 0 {
				s.mu.Unlock()
				break
			}
			c := s.pending[0]
			s.pending = s.pending[1:]
			s.mu.Unlock()
			if s.d.OnChange != nil {
				s.d.OnChange(c.old, c.new)
			}
			s.mu.Lock()
			s.delivered = c.seq
			close(s.deliverCh)
			s.deliverCh = make(chan struct{})
			s.mu.Unlock()
		}
		s.drainMu.Unlock()
		s.mu.Lock()
		n := len(s.pending)
		s.mu.Unlock()
		if n == 0 {
			return
		}
	}
}

// queue records a change for OnChange.
func (s *Service) queue(old Status) {
	s.queued++
	s.pending = append(s.pending, change{old, s.st, s.queued})
	s.last = s.st
}

// waitDelivered returns once OnChange has returned for change seq, so that
// Start/Stop/Reload are acknowledged only after the manager persisted what
// they did. OnChange must not wait for a Start/Stop/Reload of this service.
func (s *Service) waitDelivered(ctx context.Context, seq uint64) error {
	for {
		s.drain()
		s.mu.Lock()
		done, ch := s.delivered >= seq, s.deliverCh
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// jobActive reports whether a change now is the doing of a job: a
// Start/Stop/Reload is in its locked part or still waiting for its outcome.
func (s *Service) jobActive() bool {
	return s.inCall || s.start != nil || s.stop != nil || s.reload != nil
}

// setState moves to sub-state n and queues the change for OnChange. It also
// finishes the Start/Stop/Reload calls waiting for this state.
func (s *Service) setState(n SubState) {
	old := s.last
	s.st.SubState = n
	s.st.ActiveState = n.Active()
	s.st.Since = s.d.Now()
	s.st.Job = s.jobActive()
	s.pollGen++
	if n != Running && n != Reloading && !n.starting() {
		s.stopWatchdog()
	}
	if !n.starting() && !n.stopping() && n != Reloading && n != Running && n != Exited {
		s.cancelTimer()
	}
	s.queue(old)
	s.log.Debug("state", "from", old.SubState, "to", n, "result", s.st.Result)

	switch n {
	case Running, Exited:
		s.startOK = true
		s.start.finish(s.queued, nil)
		s.start = nil
		if s.reload != nil && old.SubState == Reloading {
			s.reload.finish(s.queued, s.reloadFailed)
			s.reload = nil
		}
	case Dead, Failed, AutoRestart:
		if s.start != nil {
			if s.startOK {
				s.start.finish(s.queued, nil) // oneshot without RemainAfterExit
			} else {
				s.start.finish(s.queued, s.startError())
			}
			s.start = nil
		}
		s.stop.finish(s.queued, nil)
		s.stop = nil
		s.reload.finish(s.queued, errNotActive(s.u.Name))
		s.reload = nil
	}
}
