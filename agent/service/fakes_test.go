package service

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/notify"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unit"
)

// world is a fake process table behind the Spawner, Reaper, Cgroups and
// LogSink seams. What a fake process does is decided by its Path:
//
//	true / false / exit:N  exit at once with 0 / 1 / N
//	sleep                  run until SIGTERM/SIGINT/SIGHUP/SIGKILL/SIGABRT
//	stubborn               ignore everything but SIGKILL
//	fork                   start a "sleep" daemon in the cgroup, then exit 0
//	fork-pidfile:PATH      same, and write the daemon's PID to PATH
//	spawnfail              Spawner.Start fails without a PID
//	execfail               Spawner.Start fails with a PID, which exits 203
type world struct {
	mu      sync.Mutex
	next    int
	alive   map[int]string // pid → behaviour
	exits   map[int]reaper.Exit
	watch   map[int]chan reaper.Exit
	specs   []*proc.Spec
	signals []string // "pid:SIG"
	lines   []string // core log lines
	restart []string
}

func newWorld() *world {
	return &world{next: 3_900_000, alive: map[int]string{}, exits: map[int]reaper.Exit{}, watch: map[int]chan reaper.Exit{}}
}

func exitStatus(code int) unix.WaitStatus          { return unix.WaitStatus(code << 8) }
func sigStatus(sig syscall.Signal) unix.WaitStatus { return unix.WaitStatus(sig) }

// die delivers pid's exit like the reaper would. Called with w.mu held.
func (w *world) die(pid int, st unix.WaitStatus) {
	if _, ok := w.alive[pid]; !ok {
		return
	}
	delete(w.alive, pid)
	e := reaper.Exit{PID: pid, Status: st, Time: time.Now()}
	if ch, ok := w.watch[pid]; ok {
		delete(w.watch, pid)
		ch <- e
		return
	}
	w.exits[pid] = e
}

func (w *world) Start(ctx context.Context, sp *proc.Spec) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if sp.Path == "spawnfail" {
		return 0, fmt.Errorf("execve %s: no such file or directory", sp.Path)
	}
	w.specs = append(w.specs, sp)
	w.next++
	pid := w.next
	w.alive[pid] = sp.Path
	var st *unix.WaitStatus
	switch {
	case sp.Path == "true":
		s := exitStatus(0)
		st = &s
	case sp.Path == "false":
		s := exitStatus(1)
		st = &s
	case strings.HasPrefix(sp.Path, "exit:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(sp.Path, "exit:"))
		s := exitStatus(n)
		st = &s
	case sp.Path == "execfail":
		defer func() {
			go func() {
				time.Sleep(time.Millisecond)
				w.mu.Lock()
				w.die(pid, exitStatus(proc.ExitExec))
				w.mu.Unlock()
			}()
		}()
		return pid, &proc.Error{Path: sp.Path, Code: proc.ExitExec, Msg: "execve: no such file or directory"}
	case sp.Path == "fork" || strings.HasPrefix(sp.Path, "fork-pidfile:"):
		w.next++
		w.alive[w.next] = "sleep"
		if p, ok := strings.CutPrefix(sp.Path, "fork-pidfile:"); ok {
			// The fake daemon PID is not a real process; readPIDFile checks
			// /proc, so write our own PID, which is alive.
			_ = os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
			w.alive[os.Getpid()] = "sleep"
		}
		s := exitStatus(0)
		st = &s
	}
	if st != nil {
		s := *st
		go func() {
			time.Sleep(time.Millisecond)
			w.mu.Lock()
			w.die(pid, s)
			w.mu.Unlock()
		}()
	}
	return pid, nil
}

func (w *world) Watch(pid int) <-chan reaper.Exit {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := make(chan reaper.Exit, 1)
	if e, ok := w.exits[pid]; ok {
		delete(w.exits, pid)
		ch <- e
		return ch
	}
	w.watch[pid] = ch
	return ch
}

func (w *world) Unwatch(pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.watch, pid)
}

func (w *world) kill(pid int, sig syscall.Signal) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killLocked(pid, sig)
}

func (w *world) killLocked(pid int, sig syscall.Signal) error {
	b, ok := w.alive[pid]
	if !ok {
		return syscall.ESRCH
	}
	if sig != syscall.SIGCONT {
		w.signals = append(w.signals, fmt.Sprintf("%d:%s", pid, reaper.SignalName(sig)))
	}
	switch {
	case sig == syscall.SIGKILL:
		w.die(pid, sigStatus(sig))
	case b == "stubborn" || sig == syscall.SIGCONT:
	case sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGHUP || sig == syscall.SIGABRT:
		w.die(pid, sigStatus(sig))
	}
	return nil
}

func (w *world) Create(string) error                        { return nil }
func (w *world) Apply(string, unit.Resources) error         { return nil }
func (w *world) ProcsFiles(string) []string                 { return []string{"/fake/cgroup.procs"} }
func (w *world) Remove(string) error                        { return nil }
func (w *world) Pipe(string, logs.Stream) (*os.File, error) { return os.Open(os.DevNull) }

func (w *world) Pids(string) ([]int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for p := range w.alive {
		out = append(out, p)
	}
	return out, nil
}

func (w *world) Kill(_ string, sig syscall.Signal) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := range w.alive {
		_ = w.killLocked(p, sig)
	}
	return nil
}

func (w *world) Append(_ string, stream logs.Stream, msg string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, msg)
	return nil
}

func (w *world) logged(sub string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func (w *world) sent(sig string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.signals {
		if strings.HasSuffix(s, ":"+sig) {
			n++
		}
	}
	return n
}

func (w *world) spec(i int) *proc.Spec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.specs[i]
}

// cleanup kills whatever a test left running so no watcher goroutine leaks.
func (w *world) cleanup() {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.alive, os.Getpid())
	for p := range w.alive {
		w.die(p, sigStatus(syscall.SIGKILL))
	}
}

func cmd(path string, args ...string) unit.Command {
	return unit.Command{Path: path, Args: append([]string{path}, args...)}
}

// newUnit returns a service unit with systemd's defaults, changed by mod.
func newUnit(mod func(*unit.Service)) *unit.Unit {
	svc := &unit.Service{
		Type:            unit.Simple,
		ExecStart:       []unit.Command{cmd("sleep")},
		RestartSec:      10 * time.Millisecond,
		TimeoutStartSec: 5 * time.Second,
		TimeoutStopSec:  5 * time.Second,
		KillMode:        unit.KillControlGroup,
		SendSIGKILL:     true,
		Restart:         unit.RestartNo,
	}
	if mod != nil {
		mod(svc)
	}
	return &unit.Unit{Name: "t.service", Type: unit.TypeService, Description: "Test Service",
		StartLimitInterval: 10 * time.Second, StartLimitBurst: 5, Service: svc}
}

type fixture struct {
	w       *world
	s       *Service
	changes []Status
	mu      sync.Mutex
}

func newFixture(t *testing.T, u *unit.Unit) *fixture {
	t.Helper()
	f := &fixture{w: newWorld()}
	d := Deps{
		Spawner: f.w, Reaper: f.w, Cgroups: f.w, Logs: f.w,
		Root: t.TempDir(), NotifySocket: "/run/corral/notify.sock", Cgroup: "system.slice/t.service",
		OnChange: func(_, n Status) {
			f.mu.Lock()
			f.changes = append(f.changes, n)
			f.mu.Unlock()
		},
		RequestRestart: func(name string) {
			f.w.mu.Lock()
			f.w.restart = append(f.w.restart, name)
			f.w.mu.Unlock()
		},
	}
	f.s = New(u, d)
	f.s.kill = f.w.kill
	t.Cleanup(func() {
		f.w.cleanup()
		// let watcher goroutines see the exits
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			f.s.mu.Lock()
			n := len(f.s.watches)
			f.s.mu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		f.s.mu.Lock()
		f.s.cancelTimer()
		f.s.stopWatchdog()
		f.s.mu.Unlock()
	})
	return f
}

func (f *fixture) start(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.s.Start(ctx)
}

func (f *fixture) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// waitState polls until the sub-state is want; generous deadline, only to
// avoid hanging.
func (f *fixture) waitState(t *testing.T, want SubState) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := f.s.Status()
		if st.SubState == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s (result %s), want %s; log: %q", st.SubState, st.Result, want, f.w.lines)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (f *fixture) notify(pid int, fields map[string]string) {
	f.s.Notify(notify.Message{PID: pid, Fields: fields})
}

func envOf(sp *proc.Spec) map[string]string { return envMap(sp.Env) }

func itoa(n int) string { return strconv.Itoa(n) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
