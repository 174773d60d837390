package sysinit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the real `corral init` binary with testdata/fakeagent as
// its core, because what they check (re-parenting, reaping, signals) only
// exists between real processes.

var binDir string // holds corral and corral-agent (the fake), built by TestMain

func TestMain(m *testing.M) {
	code := func() int {
		d, err := os.MkdirTemp("", "sysinit-test-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(d)
		for _, b := range [][2]string{{"corral", "corral.io/corral/cmd/corral"}, {"corral-agent", "./testdata/fakeagent"}} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(d, b[0]), b[1]).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b[1], err, out)
				return 1
			}
		}
		binDir = d
		return m.Run()
	}()
	os.Exit(code)
}

// syncBuffer collects the supervisor's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t    *testing.T
	root string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// startInit runs `corral init` on a fresh root with the given marker files
// (see testdata/fakeagent) already in place.
func startInit(t *testing.T, markers []string, extra ...string) *harness {
	t.Helper()
	root := t.TempDir()
	for _, m := range markers {
		if err := os.WriteFile(filepath.Join(root, m), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, root: root, out: &syncBuffer{}, done: make(chan error, 1)}
	args := append([]string{"init", "--root", root, "--unit-dir", "/nonexistent/units", "--cgroup-root", "corral-test"}, extra...)
	h.cmd = exec.Command(filepath.Join(binDir, "corral"), args...)
	h.cmd.Stderr = h.out
	h.cmd.Stdout = h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			h.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-h.done:
			case <-time.After(30 * time.Second):
				h.cmd.Process.Kill()
				<-h.done
			}
		}
		if t.Failed() {
			t.Logf("supervisor output:\n%s", h.out.String())
		}
		h.killLeftovers()
	})
	return h
}

// killLeftovers kills the fake agent's long sleepers if a failed test left
// them behind; the command line is checked so that a reused PID is spared.
func (h *harness) killLeftovers() {
	for _, f := range []string{"linger.pid", "linger2.pid"} {
		b, err := os.ReadFile(h.path(f))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); string(cmd) == "sleep\x001000\x00" {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (h *harness) path(n string) string { return filepath.Join(h.root, n) }

// waitUntil polls cond with a generous deadline; it exists to avoid hangs,
// not to measure anything.
func (h *harness) waitUntil(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// starts returns the PIDs of every start of the fake agent, in order.
func (h *harness) starts() []int {
	b, _ := os.ReadFile(h.path("starts"))
	var pids []int
	for _, l := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(l); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

func (h *harness) readPID(name string) int {
	h.t.Helper()
	var pid int
	h.waitUntil(name+" is written", func() bool {
		b, err := os.ReadFile(h.path(name))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

func (h *harness) exists(name string) bool {
	_, err := os.Stat(h.path(name))
	return err == nil
}

// waitExit waits for the supervisor to exit and returns its exit error.
func (h *harness) waitExit() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		return err
	case <-time.After(60 * time.Second):
		h.t.Fatal("supervisor did not exit")
		return nil
	}
}

// gone reports whether pid no longer exists (not even as a zombie).
func gone(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return errors.Is(err, os.ErrNotExist)
}

func TestAgentGetsFlagsAndIsRestartedAfterKill(t *testing.T) {
	h := startInit(t, nil)
	h.waitUntil("the agent started", func() bool { return len(h.starts()) == 1 && h.exists("ready") })
	first := h.starts()[0]

	args, err := os.ReadFile(h.path("args"))
	if err != nil {
		t.Fatal(err)
	}
	wantArgs := strings.Join([]string{filepath.Join(binDir, "corral-agent"), "--root", h.root, "--unit-dir", "/nonexistent/units",
		"--cgroup-root", "corral-test", "--helper", filepath.Join(binDir, "corral"), "--exit-records-fd", "3"}, "\n") + "\n"
	if string(args) != wantArgs {
		t.Errorf("agent argv:\n%s\nwant:\n%s", args, wantArgs)
	}

	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitUntil("the agent was restarted", func() bool { return len(h.starts()) >= 2 })
	second := h.starts()[1]
	if second == first {
		t.Fatalf("restarted agent has the old PID %d", first)
	}
	h.waitUntil("the killed agent is reaped", func() bool { return gone(first) })
	if gone(second) {
		t.Errorf("restarted agent %d is not running", second)
	}
	if !strings.Contains(h.out.String(), `status="signal=KILL"`) {
		t.Errorf("the agent's exit status is not logged")
	}
}

func TestOrphansAreReaped(t *testing.T) {
	h := startInit(t, []string{"orphan"})
	orphan := h.readPID("orphan.pid") // `sleep 1`, whose parent shell already exited
	sup := h.cmd.Process.Pid

	// While its shell still runs, the shell is its parent; after that it
	// must be the supervisor (unless it already exited and was reaped).
	h.waitUntil("the orphan's shell exits", func() bool {
		s, err := readStat("/proc", orphan)
		if err != nil || s.PPID == sup {
			return true
		}
		// An exited shell not yet reaped (a zombie) has an empty cmdline.
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(s.PPID) + "/cmdline")
		if len(cmd) > 0 && !strings.HasPrefix(string(cmd), "sh\x00") {
			t.Fatalf("orphan %d has parent %d (%q), want the supervisor %d", orphan, s.PPID, cmd, sup)
		}
		return false
	})
	deadline := time.Now().Add(20 * time.Second)
	for !gone(orphan) {
		if time.Now().After(deadline) {
			s, _ := readStat("/proc", orphan)
			t.Fatalf("orphan %d still exists in state %c", orphan, s.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.waitUntil("the reaped orphan is logged", func() bool {
		return strings.Contains(h.out.String(), fmt.Sprintf(`msg="reaped orphan" component=sysinit pid=%d `, orphan))
	})
	if !strings.Contains(h.out.String(), fmt.Sprintf("pid=%d start_time=", orphan)) {
		t.Errorf("orphan record lacks a start time")
	}
}

func TestSIGTERMStopsAgentAndAllDescendants(t *testing.T) {
	h := startInit(t, []string{"linger"})
	h.waitUntil("the agent is ready", func() bool { return h.exists("ready") })
	agent := h.starts()[0]
	linger, linger2 := h.readPID("linger.pid"), h.readPID("linger2.pid")
	for _, p := range []int{agent, linger, linger2} {
		if gone(p) {
			t.Fatalf("process %d is not running before shutdown", p)
		}
	}

	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := h.waitExit(); err != nil {
		t.Fatalf("supervisor exit: %v, want status 0", err)
	}
	if ev, _ := os.ReadFile(h.path("events")); !strings.Contains(string(ev), "TERM") {
		t.Errorf("agent did not receive SIGTERM; events: %q", ev)
	}
	for _, p := range []int{agent, linger, linger2} {
		if !gone(p) {
			s, _ := readStat("/proc", p)
			t.Errorf("process %d survived the shutdown (state %c, parent %d)", p, s.State, s.PPID)
		}
	}
	if n := len(h.starts()); n != 1 {
		t.Errorf("agent was started %d times, want 1 (no restart during shutdown)", n)
	}
}

func TestAgentIgnoringSIGTERMIsKilledAfterTimeout(t *testing.T) {
	h := startInit(t, []string{"ignoreterm"}, "--stop-timeout", "300ms")
	h.waitUntil("the agent is ready", func() bool { return h.exists("ready") })
	agent := h.starts()[0]
	h.cmd.Process.Signal(syscall.SIGINT)
	if err := h.waitExit(); err != nil {
		t.Fatalf("supervisor exit: %v, want status 0", err)
	}
	if !gone(agent) {
		t.Errorf("agent %d survived", agent)
	}
	if !strings.Contains(h.out.String(), "core did not stop in time") {
		t.Errorf("no log line about killing the stuck agent")
	}
}

func TestSIGHUPIsForwardedToAgent(t *testing.T) {
	h := startInit(t, nil)
	h.waitUntil("the agent is ready", func() bool { return h.exists("ready") })
	h.cmd.Process.Signal(syscall.SIGHUP)
	h.waitUntil("the agent got SIGHUP", func() bool {
		ev, _ := os.ReadFile(h.path("events"))
		return strings.Contains(string(ev), "HUP")
	})
	if n := len(h.starts()); n != 1 {
		t.Errorf("agent was started %d times, want 1", n)
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	h := startInit(t, []string{"crash"})
	h.waitUntil("the agent crashed a few times", func() bool { return len(h.starts()) >= 3 })
	time.Sleep(2 * time.Second)
	// Backoff allows about 10 starts in 2 s (0, 10, 20, ... 640 ms, 1 s);
	// a hot loop would manage hundreds. The bound is loose on purpose.
	if n := len(h.starts()); n > 40 {
		t.Errorf("agent started %d times in about 2 s of crash loop; backoff not applied", n)
	}

	if err := os.Remove(h.path("crash")); err != nil {
		t.Fatal(err)
	}
	h.waitUntil("the agent recovers once it stops crashing", func() bool { return h.exists("ready") })
	pids := h.starts()
	if last := pids[len(pids)-1]; gone(last) {
		t.Errorf("recovered agent %d is not running", last)
	}
}

// panicOnce is a slog handler that panics the first time it sees msg, to
// drive Run into its recover path.
type panicOnce struct {
	slog.Handler
	msg  string
	done bool
}

func (p *panicOnce) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == p.msg && !p.done {
		p.done = true
		panic("injected panic at " + p.msg)
	}
	return p.Handler.Handle(ctx, r)
}

// TestPanicLeadsToOrderlyShutdown runs the supervisor in this test process
// (which becomes a subreaper for the rest of the run, harmless here).
func TestPanicLeadsToOrderlyShutdown(t *testing.T) {
	root := t.TempDir()
	// The agent leaves a one-second orphan; logging its reaping panics,
	// by which time the agent is long up.
	if err := os.WriteFile(filepath.Join(root, "orphan"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	h := &panicOnce{Handler: slog.NewTextHandler(out, nil), msg: "reaped orphan"}
	s := New(Config{Root: root, Agent: filepath.Join(binDir, "corral-agent"), Log: slog.New(h), StopTimeout: 20 * time.Second})
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, errPanic) {
			t.Errorf("Run = %v, want errPanic", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after the panic")
	}
	hr := &harness{t: t, root: root}
	pids := hr.starts()
	if len(pids) != 1 {
		t.Fatalf("agent started %d times, want 1", len(pids))
	}
	if ev, _ := os.ReadFile(hr.path("events")); !strings.Contains(string(ev), "TERM") {
		t.Errorf("agent did not get SIGTERM after the panic; events %q\n%s", ev, out.String())
	}
	if !gone(pids[0]) {
		t.Errorf("agent %d survived", pids[0])
	}
	if !strings.Contains(out.String(), "supervisor panicked") {
		t.Errorf("panic not logged:\n%s", out.String())
	}
}

// TestExitRecordsReachTheCoreAndItsSuccessor checks the hand-over of issue
// 7: an orphan that exits with status 7 is reported to the running core
// over its exit-record stream at once, and to the next core (after the
// first was SIGKILLed) from the table.
func TestExitRecordsReachTheCoreAndItsSuccessor(t *testing.T) {
	h := startInit(t, []string{"orphan7"})
	h.waitUntil("the agent is ready", func() bool { return h.exists("ready") })
	first := h.starts()[0]
	orphan := h.readPID("orphan7.pid")
	want := func(agent int) string { return fmt.Sprintf("%d %d ", agent, orphan) }
	line := func(agent int) string {
		b, _ := os.ReadFile(h.path("records"))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, want(agent)) {
				return l
			}
		}
		return ""
	}
	h.waitUntil("the running core gets the orphan's record", func() bool { return line(first) != "" })
	f := strings.Fields(line(first))
	if ws := syscall.WaitStatus(atoi(t, f[3])); !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("record %q: status %v, want exit 7", line(first), ws)
	}
	if start, _ := strconv.ParseUint(f[2], 10, 64); start == 0 {
		t.Errorf("record %q has no start time", line(first))
	}

	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitUntil("the agent was restarted", func() bool { return len(h.starts()) >= 2 })
	second := h.starts()[1]
	h.waitUntil("the next core gets the table", func() bool { return line(second) != "" })
	if got := strings.Fields(line(second)); got[3] != f[3] || got[2] != f[2] {
		t.Errorf("next core got %q, first got %q", line(second), line(first))
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
