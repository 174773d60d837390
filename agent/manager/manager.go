// Package manager is the core's unit manager: it owns the registry of loaded
// units and their runtime objects (services, sockets, targets, slices), feeds
// the job engine, routes sd_notify messages and state changes, persists state
// and answers the API server. It is the one place where the agent's packages
// meet; each of them stays testable on its own behind small interfaces.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"corral.io/corral/agent/cgroup"
	"corral.io/corral/agent/job"
	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/notify"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/state"
	"corral.io/corral/agent/unit"
)

// Config is what main hands the manager. Everything the manager writes lives
// under Root, so that tests and `make run` use a temp dir.
type Config struct {
	Root       string
	UnitDirs   []string // searched before the standard search path
	CgroupBase string   // prefix of every cgroup Corral creates
	Helper     string   // trampoline binary for proc.Spawner ("" = /proc/self/exe)
	// SystemUnits adds systemd's directories (/etc/systemd/system,
	// /lib/systemd/system, ...) to the search path. Only for a Corral that
	// owns the machine (PID 1): on a host booted by another init, starting
	// any unit with default dependencies would pull in the host's
	// sysinit.target and re-run its early boot (systemd-tmpfiles-setup
	// wipes /tmp).
	SystemUnits bool
	// Boot is set when PID 1 started the core: before the default target
	// it runs the boot steps of boot.go (machine ID, random seed,
	// generators, masks, tmpfiles, /dev/log), once per boot.
	Boot bool
	// Cmdline is the kernel command line for the boot generators; "" reads
	// /proc/cmdline.
	Cmdline string
	Log     *slog.Logger
	// Trim hands idle memory back to the kernel after a burst of work
	// (main passes sysinit.Trim, which also drops the page-table entries of
	// the binary's read-only pages); nil means debug.FreeOSMemory.
	Trim func() int64
	// OnShutdown handles a shutdown request from the API. Under `corral
	// init` the supervisor must drive it (it would otherwise restart the
	// agent); nil means: stop every unit and return from Run.
	OnShutdown func(action string)
	// ExitRecords is the supervisor's stream of exit records
	// (sysinit.Record) of processes it reaped: how the core learns the
	// exit status of services it adopted after a restart (recover.go).
	// Nil: exits of adopted processes are known only as "unknown".
	ExitRecords *os.File
	// Notify is the notify socket inherited from the previous program
	// image of this core (daemon-reexec, reexec.go); nil binds a new one.
	Notify *os.File
}

// Paths under the root.
func (c Config) runDir() string     { return filepath.Join(c.Root, "run", "corral") }
func (c Config) logDir() string     { return filepath.Join(c.Root, "var", "log", "corral") }
func (c Config) enableDir() string  { return filepath.Join(c.Root, "etc", "corral", "system") }
func (c Config) statePath() string  { return filepath.Join(c.runDir(), "state.db") }
func (c Config) notifyPath() string { return filepath.Join(c.runDir(), "notify.sock") }

// Manager is the core's unit manager. Create it with New, then call Run.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	loader *unit.Loader
	engine *job.Engine
	reaper *reaper.Reaper
	spawn  *proc.Spawner
	cg     cgroup.Manager
	notify *notify.Listener
	logs   *logs.Store
	db     *state.DB
	book   *exitBook // exit records from the supervisor (recover.go)

	// runCtx is the context of Run; work started by callbacks (auto-restart,
	// socket activation, follow-up jobs) hangs off it, never off a request.
	runCtx context.Context
	stop   context.CancelFunc
	ready  chan struct{}

	mu      sync.RWMutex
	units   map[string]*entry // canonical name → entry
	aliases map[string]string // alias → canonical name
	gen     uint64            // bumped by daemon-reload
	state   string            // "starting", "running", "stopping"

	changes atomic.Uint64 // state changes, for trimWhenIdle

	beforeStop []func(context.Context) // BeforeStop hooks
	relisten   []string                // socket units recorded active by a previous core
}

// New opens everything the manager needs under cfg.Root. Nothing is started
// until Run.
func New(cfg Config) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	for _, d := range []string{cfg.runDir(), cfg.logDir(), cfg.enableDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Log,
		units:   map[string]*entry{},
		aliases: map[string]string{},
		ready:   make(chan struct{}),
		state:   "starting",
		spawn:   &proc.Spawner{Helper: cfg.Helper},
		reaper:  reaper.New(cfg.Log),
		book:    newExitBook(cfg.ExitRecords),
	}
	var err error
	if m.db, err = state.Open(cfg.statePath(), cfg.Log); err != nil {
		return nil, fmt.Errorf("state db: %w", err)
	}
	if m.logs, err = logs.Open(cfg.logDir(), logs.Options{}); err != nil {
		m.db.Close()
		return nil, fmt.Errorf("log store %s: %w", cfg.logDir(), err)
	}
	if m.cg, err = cgroup.New(cfg.CgroupBase); err != nil {
		m.closeAll()
		return nil, fmt.Errorf("cgroups under %q: %w", cfg.CgroupBase, err)
	}
	if m.notify, err = listenNotify(cfg); err != nil {
		m.closeAll()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	m.loader = unit.NewLoader(cfg.Root, cfg.UnitDirs...)
	if !cfg.SystemUnits {
		m.loader.Dirs = corralDirs(cfg.Root, m.loader.Dirs)
	}
	m.engine = job.New(graph{m}, executor{m}, cfg.Log, job.WithRecorder(jobRecorder{m.db}))
	if cfg.Boot {
		m.generateEarly() // boot.go: units are loaded once, with the generators' output
	}
	if err := m.loadAll(); err != nil {
		m.closeAll()
		return nil, err
	}
	return m, nil
}

// corralDirs drops systemd's own directories under root from a search path.
func corralDirs(root string, dirs []string) []string {
	skip := map[string]bool{}
	for _, d := range []string{"etc/systemd/system", "run/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"} {
		skip[filepath.Join(root, d)] = true
	}
	var out []string
	for _, d := range dirs {
		if !skip[d] {
			out = append(out, d)
		}
	}
	return out
}

func (m *Manager) closeAll() {
	if m.notify != nil {
		m.notify.Close()
	}
	if m.logs != nil {
		m.logs.Close()
	}
	if m.db != nil {
		m.db.Close()
	}
	m.book.close()
}

// Run starts the reaper, the notify socket and the job engine, then starts
// target (usually "default.target"; "" starts nothing). It returns when ctx
// is done or Shutdown is called, after stopping every unit.
func (m *Manager) Run(ctx context.Context, target string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.runCtx, m.stop = ctx, cancel

	var wg sync.WaitGroup
	bg := context.WithoutCancel(ctx) // the machinery outlives ctx until units are stopped
	bg, stopBG := context.WithCancel(bg)
	wg.Add(4)
	go func() { defer wg.Done(); m.trimWhenIdle(bg) }()
	go func() { defer wg.Done(); m.reaper.Run(bg) }()
	go func() { defer wg.Done(); m.notify.Run(bg, m.routeNotify) }()
	go func() { defer wg.Done(); m.engine.Run(bg) }()
	// Re-adopt what a previous core left running, before anything can
	// start a unit a second time (recover.go).
	recovered := m.recoverUnits(ctx)
	close(m.ready)
	for _, name := range m.relisten {
		m.log.Info("recovery: listening again on a socket unit of the previous core", "unit", name)
		if _, err := m.engine.Enqueue(ctx, name, job.Start, job.Replace); err != nil {
			m.log.Error("recovery: socket unit", "unit", name, "err", err)
		}
	}

	var atShutdown func()
	if m.cfg.Boot {
		atShutdown = m.boot(ctx)
	}
	if target != "" && recovered && m.lookup(target) != nil && m.lookup(target).activeState() == "active" {
		// The previous core reached it; starting it again would start
		// what was stopped or failed since, which a restart of the
		// core must not do (as systemd's daemon-reexec).
		m.log.Info("default target already active after recovery; not started again", "unit", target)
	} else if target != "" {
		if j, err := m.engine.Enqueue(ctx, target, job.Start, job.Replace); err != nil {
			m.log.Error("start default target", "unit", target, "err", err)
			fmt.Fprintf(os.Stderr, "corral: failed to reach %s: %v\n", target, err)
		} else {
			go m.announce(ctx, j)
		}
	}
	m.setState("running")
	<-ctx.Done()

	m.setState("stopping")
	sctx, scancel := context.WithTimeout(bg, 5*time.Minute)
	m.mu.RLock()
	hooks := m.beforeStop
	m.mu.RUnlock()
	for _, f := range hooks {
		f(sctx)
	}
	m.stopAll(sctx)
	scancel()
	if atShutdown != nil {
		atShutdown()
	}
	stopBG()
	wg.Wait()
	m.closeAll()
	return nil
}

func (m *Manager) setState(s string) {
	m.mu.Lock()
	m.state = s
	m.mu.Unlock()
}

// stopAll stops every unit that is not inactive, in one pass of stop jobs so
// that the engine orders them (reverse of start order).
func (m *Manager) stopAll(ctx context.Context) {
	var jobs []*job.Job
	for _, e := range m.entries() {
		if st := e.activeState(); st == "inactive" || st == "failed" {
			continue
		}
		j, err := m.engine.Enqueue(ctx, e.name(), job.Stop, job.Replace)
		if err != nil {
			m.log.Error("stop at shutdown", "unit", e.name(), "err", err)
			continue
		}
		jobs = append(jobs, j)
	}
	for _, j := range jobs {
		m.engine.Wait(ctx, j)
	}
}

// announce prints one plain line when the default target is reached (or
// not). Under PID 1 the core's stderr is the console: boot tests and humans
// wait for "corral: reached multi-user.target".
func (m *Manager) announce(ctx context.Context, j *job.Job) {
	res, err := m.engine.Wait(ctx, j)
	if err != nil {
		return
	}
	name := m.get(j.Unit()).name()
	if res.Success() {
		fmt.Fprintf(os.Stderr, "corral: reached %s\n", name)
		return
	}
	fmt.Fprintf(os.Stderr, "corral: failed to reach %s: job %s\n", name, res)
}

// BeforeStop registers f to run at shutdown before any unit is stopped,
// while the spawner and reaper still work: backends whose teardown runs
// processes (CNI plugins for VM pods) need both.
func (m *Manager) BeforeStop(f func(context.Context)) {
	m.mu.Lock()
	m.beforeStop = append(m.beforeStop, f)
	m.mu.Unlock()
}

// trimWhenIdle hands memory back to the kernel once a burst of work (boot,
// starting a target of hundreds of units, daemon-reload) is over. The Go
// heap keeps freed pages for a while; an idle agent should not carry its
// peak forever.
func (m *Manager) trimWhenIdle(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := m.changes.Load(); n != seen && len(m.engine.Jobs()) == 0 {
			seen = n
			if m.cfg.Trim != nil {
				m.cfg.Trim()
			} else {
				debug.FreeOSMemory()
			}
		}
	}
}

// Exit ends Run, which stops every unit first.
func (m *Manager) Exit() {
	if m.stop != nil {
		m.stop()
	}
}

// Ready is closed once Run has re-adopted what a previous core left
// running (recover.go) and accepts jobs. The API must not answer before:
// a unit not yet adopted would look inactive, so a stop would be a no-op
// and a start would start it a second time.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// errStopping is returned while the manager shuts down.
var errStopping = errors.New("manager is shutting down")

// DB is the state database, shared with the CRI server for its ID maps.
func (m *Manager) DB() *state.DB { return m.db }
