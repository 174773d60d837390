// Package socket runs socket units (systemd.socket(5)): it binds the
// Listen*= addresses while the unit is started, and activates the triggered
// service when traffic arrives.
//
// With Accept=no the Socket polls its fds without consuming anything and
// asks the manager to start the service, which then gets the listening fds
// (Files) as LISTEN_FDS; while the service runs the Socket does not poll.
// With Accept=yes the Socket accepts each connection itself and asks the
// manager to start one instance of the template service per connection.
//
// The manager owns the job engine, so every start goes through the small
// Activator interface declared here; the Socket never spawns processes.
package socket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/unit"
)

// Activator is what a Socket needs from the manager. It is implemented by
// the manager, which routes the requests through the job engine.
//
// Its methods are called from the Socket's own goroutines, never with the
// Socket's lock held. Stop cancels their ctx and waits for them, so the
// manager must not hold a lock that these methods need while calling Stop.
type Activator interface {
	// ActivateService starts the triggered service (Accept=no) as a start
	// job and returns when that job finished.
	ActivateService(ctx context.Context, service string) error
	// ActivateInstance starts service, an instance of the template service
	// named as systemd names it (<prefix>@<n>-<local>-<remote>.service), and
	// hands it conn as its only socket (fd 3, LISTEN_FDS=1,
	// LISTEN_FDNAMES=connection as systemd names it). ActivateInstance
	// takes ownership of conn, also when it fails: like systemd, the manager
	// keeps the connection with the instance (a restart of the instance
	// gets it again) and closes it when the instance is gone.
	ActivateInstance(ctx context.Context, service string, conn *os.File) error
	// ServiceActive reports whether service is running (or starting); the
	// Socket does not poll while the service it triggers is active.
	ServiceActive(service string) bool
}

// Sub-states, as systemd names them for sockets.
const (
	SubDead      = "dead"
	SubListening = "listening"
	SubRunning   = "running"
	SubFailed    = "failed"
)

// Results, as systemd names them for sockets.
const (
	ResultSuccess         = "success"
	ResultResources       = "resources"
	ResultTriggerLimitHit = "trigger-limit-hit"
)

// Status is a snapshot of the unit's runtime state for the manager and
// `corralctl status`.
type Status struct {
	ActiveState  string // "inactive", "active" or "failed"
	SubState     string // SubDead, SubListening, SubRunning or SubFailed
	Result       string // ResultSuccess, ResultResources, ResultTriggerLimitHit
	NAccepted    int    // connections accepted since the unit was loaded (Accept=yes)
	NConnections int    // instances currently running (Accept=yes)
	Since        time.Time
}

// Socket is one socket unit. It is safe for concurrent use.
type Socket struct {
	name  string
	cfg   unit.Socket // with defaults applied
	addrs []address
	err   error // configuration error, reported by Start
	a     Activator
	log   *slog.Logger

	mu        sync.Mutex
	sub       string
	result    string
	since     time.Time
	lns       []*listener
	nAccepted int
	// instances are the Accept=yes instances counted in NConnections.
	instances map[string]instance
	cancel    context.CancelFunc
	wake      *os.File // eventfd that interrupts poll on Stop
	wg        sync.WaitGroup
	limit     rateLimit

	// stopped carries ServiceStopped to the Accept=no loop; buffered so the
	// manager never blocks on it and a stop is not lost if it arrives
	// before the loop waits.
	stopped chan struct{}
}

// New returns a Socket for u (which must have a [Socket] section) in state
// dead. root is the agent's root directory; Listen paths in unit files are
// host paths and are not prefixed with it, so it is currently unused and
// kept for the manager's uniform constructor shape. A nil log discards.
func New(u *unit.Unit, root string, a Activator, log *slog.Logger) *Socket {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Socket{
		name:      u.Name,
		a:         a,
		log:       log.With("unit", u.Name),
		sub:       SubDead,
		result:    ResultSuccess,
		since:     time.Now(),
		instances: map[string]instance{},
		stopped:   make(chan struct{}, 1),
	}
	if u.Socket == nil {
		s.err = fmt.Errorf("socket %s: unit has no [Socket] section", u.Name)
		return s
	}
	s.cfg = withDefaults(u.Name, *u.Socket)
	s.err = s.validate()
	s.limit = rateLimit{interval: s.cfg.TriggerLimitIntervalSec, burst: s.cfg.TriggerLimitBurst}
	return s
}

// withDefaults fills systemd's defaults for fields left zero by the parser.
func withDefaults(name string, c unit.Socket) unit.Socket {
	if c.SocketMode == 0 {
		c.SocketMode = 0o666
	}
	if c.DirectoryMode == 0 {
		c.DirectoryMode = 0o755
	}
	if c.Backlog <= 0 {
		c.Backlog = unix.SOMAXCONN
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 64
	}
	if c.FileDescriptorName == "" {
		c.FileDescriptorName = strings.TrimSuffix(name, ".socket")
	}
	if c.TriggerLimitIntervalSec <= 0 {
		c.TriggerLimitIntervalSec = 2 * time.Second
	}
	if c.TriggerLimitBurst <= 0 {
		c.TriggerLimitBurst = 20
		if c.Accept {
			c.TriggerLimitBurst = 200
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = c.TimeoutSec
	}
	return c
}

// validate rejects what systemd refuses at load time, so Start can name the
// unit and the offending line before anything is bound.
func (s *Socket) validate() error {
	c := &s.cfg
	if len(c.Listen) == 0 {
		return fmt.Errorf("socket %s: no Listen*= address", s.name)
	}
	nodes := 0
	for _, l := range c.Listen {
		a, err := parseAddress(l)
		if err != nil {
			return fmt.Errorf("socket %s: Listen %s %q: %w", s.name, l.Kind, l.Address, err)
		}
		if c.Accept && (a.kind == "datagram" || a.kind == "fifo") {
			return fmt.Errorf("socket %s: Accept=yes is not possible with %s %q", s.name, a.kind, a.raw)
		}
		if a.kind == "fifo" || a.family == unix.AF_UNIX && !a.abstract() {
			nodes++
		}
		s.addrs = append(s.addrs, a)
	}
	if c.Accept && c.Service != "" {
		return fmt.Errorf("socket %s: Service= is not allowed with Accept=yes", s.name)
	}
	if len(c.Symlinks) > 0 && nodes != 1 {
		return fmt.Errorf("socket %s: Symlinks= needs exactly one file-system socket or FIFO", s.name)
	}
	if n := c.FileDescriptorName; len(n) > 255 || strings.ContainsFunc(n, func(r rune) bool { return r < ' ' || r > '~' || r == ':' }) {
		return fmt.Errorf("socket %s: invalid FileDescriptorName=%q", s.name, n)
	}
	return nil
}

// prefix is the unit name up to '@' or the suffix, systemd's
// unit_name_to_prefix.
func (s *Socket) prefix() string {
	p := strings.TrimSuffix(s.name, ".socket")
	if i := strings.IndexByte(p, '@'); i >= 0 {
		p = p[:i]
	}
	return p
}

// ServiceName is the unit the socket triggers: Service=, else the socket's
// name with ".service"; with Accept=yes the template "<prefix>@.service".
func (s *Socket) ServiceName() string {
	if s.cfg.Accept {
		return s.prefix() + "@.service"
	}
	if s.cfg.Service != "" {
		return s.cfg.Service
	}
	return strings.TrimSuffix(s.name, ".socket") + ".service"
}

// Status returns a snapshot of the unit's state.
func (s *Socket) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{SubState: s.sub, Result: s.result, NAccepted: s.nAccepted, NConnections: len(s.instances), Since: s.since}
	switch s.sub {
	case SubDead:
		st.ActiveState = "inactive"
	case SubFailed:
		st.ActiveState = "failed"
	default:
		st.ActiveState = "active"
	}
	return st
}

// setSub changes the sub-state; callers hold s.mu.
func (s *Socket) setSub(sub string) {
	if s.sub != sub {
		s.log.Debug("socket state", "from", s.sub, "to", sub)
		s.sub, s.since = sub, time.Now()
	}
}

func (s *Socket) setSubLocked(sub string) {
	s.mu.Lock()
	s.setSub(sub)
	s.mu.Unlock()
}

// Files returns duplicates of the listening fds, in Listen*= order, with
// their LISTEN_FDNAMES names. The caller owns the duplicates and closes them
// once the service has been spawned; the originals stay with the Socket for
// as long as it is started, so the service's copies keep working across
// service restarts. Instances of Accept=yes sockets get the connection, not
// these, so Files returns nothing for them, and nothing when the socket is
// not listening.
func (s *Socket) Files() (files []*os.File, names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Accept {
		return nil, nil
	}
	for _, l := range s.lns {
		fd, err := unix.FcntlInt(uintptr(l.fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			s.log.Error("dup listening fd", "address", l.addr.raw, "err", err)
			for _, f := range files {
				f.Close()
			}
			return nil, nil
		}
		files = append(files, os.NewFile(uintptr(fd), l.addr.raw))
		names = append(names, s.cfg.FileDescriptorName)
	}
	return files, names
}

// Start binds every Listen*= address, applies modes and owners, creates
// Symlinks= and starts watching for traffic. On any error everything bound so
// far is closed again and the unit enters failed (result resources). ctx
// bounds only Start itself; the watch runs until Stop.
func (s *Socket) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == SubListening || s.sub == SubRunning {
		return nil
	}
	if s.err != nil {
		s.failLocked(ResultResources)
		return s.err
	}
	own, err := resolveOwner(s.cfg.SocketUser, s.cfg.SocketGroup)
	if err != nil {
		s.failLocked(ResultResources)
		return fmt.Errorf("socket %s: %w", s.name, err)
	}
	var lns []*listener
	for _, a := range s.addrs {
		if err := ctx.Err(); err != nil {
			closeAll(lns, true)
			s.failLocked(ResultResources)
			return fmt.Errorf("socket %s: %w", s.name, err)
		}
		l, err := s.open(a, own)
		if err != nil {
			closeAll(lns, true)
			s.failLocked(ResultResources)
			return fmt.Errorf("socket %s: Listen %s %q: %w", s.name, a.kind, a.raw, err)
		}
		lns = append(lns, l)
	}
	s.symlink(lns)
	if s.cfg.Accept {
		for _, l := range lns {
			// Only this Socket ever accepts on Accept=yes fds, so making
			// them non-blocking cannot surprise a service, and it keeps a
			// connection reset between poll and accept from blocking us.
			if err := unix.SetNonblock(l.fd, true); err != nil {
				closeAll(lns, true)
				s.failLocked(ResultResources)
				return fmt.Errorf("socket %s: %w", s.name, err)
			}
		}
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		closeAll(lns, true)
		s.failLocked(ResultResources)
		return fmt.Errorf("socket %s: eventfd: %w", s.name, err)
	}
	if s.cancel != nil {
		s.cancel() // left over from a run that failed on its own
	}
	s.lns, s.wake = lns, os.NewFile(uintptr(wfd), "wake")
	s.result = ResultSuccess
	s.limit.reset()
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.setSub(SubListening)
	s.wg.Add(1)
	if s.cfg.Accept {
		go s.acceptLoop(loopCtx, lns, wfd)
	} else {
		go s.triggerLoop(loopCtx, lns, wfd)
	}
	s.log.Info("listening", "addresses", len(lns))
	return nil
}

// symlink creates Symlinks= pointing at the single file-system node; a
// failure is logged, not fatal, as in systemd.
func (s *Socket) symlink(lns []*listener) {
	if len(s.cfg.Symlinks) == 0 {
		return
	}
	var target string
	for _, l := range lns {
		if l.node != "" {
			target = l.node
		}
	}
	for _, p := range s.cfg.Symlinks {
		if err := mkdirParents(p, s.cfg.DirectoryMode); err != nil {
			s.log.Warn("symlink parent", "path", p, "err", err)
			continue
		}
		if cur, err := os.Readlink(p); err == nil {
			if cur == target {
				continue
			}
			os.Remove(p)
		}
		if err := os.Symlink(target, p); err != nil {
			s.log.Warn("symlink", "path", p, "err", err)
		}
	}
}

// Stop stops watching, waits for in-flight activations to give up, closes
// the listening fds and, with RemoveOnStop=, unlinks the nodes and symlinks
// it created. Without RemoveOnStop= the nodes stay, as in systemd, so that a
// service still holding the fds stays reachable. A failed unit stays failed.
func (s *Socket) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, wake := s.cancel, s.wake
	s.cancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		wakeUp(wake)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("socket %s: stop: %w", s.name, ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	errs = append(errs, s.closeLocked()...)
	if s.sub != SubFailed {
		s.setSub(SubDead)
	}
	return errors.Join(errs...)
}

// closeLocked closes the fds and, with RemoveOnStop=, removes nodes and
// symlinks. It is idempotent.
func (s *Socket) closeLocked() []error {
	var errs []error
	if s.cfg.RemoveOnStop {
		for _, p := range s.cfg.Symlinks {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("socket %s: %w", s.name, err))
			}
		}
	}
	for _, err := range closeAll(s.lns, s.cfg.RemoveOnStop) {
		errs = append(errs, fmt.Errorf("socket %s: %w", s.name, err))
	}
	s.lns = nil
	if s.wake != nil {
		s.wake.Close()
		s.wake = nil
	}
	return errs
}

func closeAll(lns []*listener, remove bool) []error {
	var errs []error
	for _, l := range lns {
		l.file.Close()
		if remove {
			if err := l.removeNode(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// failLocked enters failed with result; callers hold s.mu.
func (s *Socket) failLocked(result string) {
	s.result = result
	s.setSub(SubFailed)
}

// ServiceStopped is called by the manager when the triggered service went
// inactive, so that an Accept=no Socket polls again. (A missed call only
// delays this: the Socket also re-checks ServiceActive every second.)
func (s *Socket) ServiceStopped() {
	select {
	case s.stopped <- struct{}{}:
	default:
	}
}

// InstanceStopped is called by the manager when an Accept=yes instance went
// inactive; it frees its slot in MaxConnections= and NConnections.
func (s *Socket) InstanceStopped(service string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch in := s.instances[service]; in.state {
	case instRunning:
		delete(s.instances, service)
	case instActivating:
		in.state = instGone
		s.instances[service] = in
	}
}

func wakeUp(f *os.File) {
	if f == nil {
		return
	}
	one := [8]byte{1}
	f.Write(one[:])
}

// rateLimit is systemd's ratelimit: at most burst events per interval,
// counted from the first event of the window.
type rateLimit struct {
	interval time.Duration
	burst    int
	begin    time.Time
	n        int
}

func (r *rateLimit) reset() { r.begin, r.n = time.Time{}, 0 }

func (r *rateLimit) allow(now time.Time) bool {
	if r.begin.IsZero() || now.Sub(r.begin) >= r.interval {
		r.begin, r.n = now, 0
	}
	if r.n >= r.burst {
		return false
	}
	r.n++
	return true
}

func newFile(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }
