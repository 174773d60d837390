//go:build integration

package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/agent/cgroup"
	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/notify"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unit"
)

var (
	reaperOnce sync.Once
	theReaper  *reaper.Reaper
)

// sharedReaper is the test process's single wait4(-1) loop; the process is
// also a subreaper so that forking daemons re-parent to it, as to the agent.
func sharedReaper(t *testing.T) *reaper.Reaper {
	reaperOnce.Do(func() {
		if err := reaper.SetSubreaper(); err != nil {
			t.Fatalf("subreaper: %v", err)
		}
		theReaper = reaper.New(nil)
		go theReaper.Run(context.Background())
	})
	return theReaper
}

type real struct {
	s      *Service
	cg     cgroup.Manager
	cgPath string
	logs   *logs.Store
	root   string
}

// newReal builds a Service on the real reaper, spawner, cgroups, notify
// socket and log store, in a unique cgroup base and temp root.
func newReal(t *testing.T, u *unit.Unit) *real {
	t.Helper()
	r := &real{root: t.TempDir()}
	base := fmt.Sprintf("corral-svc-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	cg, err := cgroup.New(base)
	if err != nil {
		t.Fatal(err)
	}
	r.cg = cg
	r.cgPath = "system.slice/" + u.Name
	st, err := logs.Open(filepath.Join(r.root, "var/log/corral"), logs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.logs = st
	nl, err := notify.Listen(filepath.Join(r.root, "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var svc *Service
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		nl.Run(ctx, func(m notify.Message) {
			mu.Lock()
			s := svc
			mu.Unlock()
			if s != nil {
				s.Notify(m)
			}
		})
	}()
	mu.Lock()
	svc = New(u, Deps{
		Spawner: &proc.Spawner{}, Reaper: sharedReaper(t), Cgroups: cg, Logs: st,
		Root: r.root, NotifySocket: nl.Path(), Cgroup: r.cgPath,
		RequestRestart: func(string) {
			go func() { // what the manager's restart job does: stop, then start
				_ = svc.Stop(context.Background())
				_ = svc.Start(context.Background())
			}()
		},
	})
	r.s = svc
	mu.Unlock()
	t.Cleanup(func() {
		ctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		if err := r.s.Stop(ctx); err != nil {
			t.Errorf("cleanup stop: %v", err)
		}
		_ = cg.Kill(r.cgPath, syscall.SIGKILL)
		_ = cg.Remove(r.cgPath)
		_ = cg.Remove("system.slice")
		_ = cg.Remove("")
		cancel()
		nl.Close()
		<-done
		st.Close()
	})
	return r
}

func realUnit(name string, mod func(*unit.Service)) *unit.Unit {
	u := newUnit(mod)
	u.Name = name
	u.Description = "Test " + name
	return u
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *real) logLines(t *testing.T) []logs.Entry {
	var out []logs.Entry
	if err := r.logs.Read(context.Background(), r.s.u.Name, logs.Query{}, func(e logs.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func (r *real) hasLog(t *testing.T, stream logs.Stream, msg string) bool {
	for _, e := range r.logLines(t) {
		if e.Stream == stream && strings.Contains(e.Msg, msg) {
			return true
		}
	}
	return false
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(string(b[i+1:])), "Z")
}

func testBinary(t *testing.T) string {
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRealSimpleServiceLogsAndStop(t *testing.T) {
	r := newReal(t, realUnit("simple-it.service", func(s *unit.Service) {
		s.ExecStart = []unit.Command{cmd("/bin/sh", "-c", "echo hello-out $GREETING; echo hello-err >&2; exec sleep 1000")}
		s.Environment = []string{"GREETING=world"}
	}))
	if err := r.s.Start(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	st := r.s.Status()
	if st.SubState != Running || st.MainPID == 0 || st.MainPIDStart == 0 {
		t.Fatalf("status %+v", st)
	}
	pids, err := r.cg.Pids(r.cgPath)
	if err != nil || len(pids) != 1 || pids[0] != st.MainPID {
		t.Fatalf("cgroup pids %v (%v), main %d", pids, err, st.MainPID)
	}
	waitFor(t, "stdout and stderr in the log store", func() bool {
		return r.hasLog(t, logs.Stdout, "hello-out world") && r.hasLog(t, logs.Stderr, "hello-err")
	})
	if !r.hasLog(t, logs.Core, "Started Test simple-it.service.") {
		t.Errorf("no Started line: %v", r.logLines(t))
	}
	if err := r.s.Stop(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); st.SubState != Dead || st.Result != Success {
		t.Fatalf("after stop %s/%s", st.SubState, st.Result)
	}
	if alive(st.MainPID) {
		t.Fatalf("main PID %d still alive", st.MainPID)
	}
}

func TestRealFailingServiceHitsStartLimit(t *testing.T) {
	u := realUnit("fail-it.service", func(s *unit.Service) {
		s.ExecStart = []unit.Command{cmd("/bin/sh", "-c", "exit 3")}
		s.Restart = unit.RestartOnFailure
		s.RestartSec = 20 * time.Millisecond
	})
	u.StartLimitBurst = 3
	r := newReal(t, u)
	_ = r.s.Start(ctx10(t)) // simple: active once spawned, fails right after
	waitFor(t, "start-limit-hit", func() bool { return r.s.Status().Result == StartLimitHit })
	st := r.s.Status()
	if st.SubState != Failed || st.NRestarts != 3 || st.ExecMainCode != cldExited || st.ExecMainStatus != 3 {
		t.Fatalf("status %+v", st)
	}
	for _, want := range []string{"Main process exited, code=exited, status=3/NOTIMPLEMENTED", "Failed with result 'exit-code'.",
		"Scheduled restart job, restart counter is at 3.", "Start request repeated too quickly."} {
		if !r.hasLog(t, logs.Core, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestRealNotifyReady(t *testing.T) {
	r := newReal(t, realUnit("notify-it.service", func(s *unit.Service) {
		s.Type = unit.Notify
		s.ExecStart = []unit.Command{cmd(testBinary(t))}
		s.Environment = []string{helperEnv + "=notify"}
	}))
	if err := r.s.Start(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	st := r.s.Status()
	if st.SubState != Running || st.StatusText != "up" {
		t.Fatalf("status %+v", st)
	}
}

func TestRealForkingPIDFile(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "d.pid")
	r := newReal(t, realUnit("fork-it.service", func(s *unit.Service) {
		s.Type = unit.Forking
		s.PIDFile = pidFile
		s.ExecStart = []unit.Command{cmd(testBinary(t))}
		s.Environment = []string{helperEnv + "=fork", "PIDFILE=" + pidFile}
	}))
	if err := r.s.Start(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	st := r.s.Status()
	b, _ := os.ReadFile(pidFile)
	if want, _ := strconv.Atoi(strings.TrimSpace(string(b))); st.SubState != Running || st.MainPID != want {
		t.Fatalf("status %+v, pid file %q", st, b)
	}
	main := st.MainPID
	if err := r.s.Stop(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); st.SubState != Dead || alive(main) {
		t.Fatalf("after stop %+v, daemon alive %v", st, alive(main))
	}
}

func TestRealControlGroupKillLeavesNothing(t *testing.T) {
	r := newReal(t, realUnit("cg-it.service", func(s *unit.Service) {
		// The shell dies on SIGTERM; its background children would survive
		// under KillMode=process.
		s.ExecStart = []unit.Command{cmd("/bin/sh", "-c", "sleep 1000 & sleep 1001 & sleep 1002")}
	}))
	if err := r.s.Start(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	var pids []int
	waitFor(t, "4 processes in the cgroup", func() bool {
		pids, _ = r.cg.Pids(r.cgPath)
		return len(pids) == 4
	})
	if err := r.s.Stop(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("pid %d survived the stop", p)
		}
	}
	if left, err := r.cg.Pids(r.cgPath); err == nil && len(left) > 0 {
		t.Errorf("cgroup still has %v", left)
	}
}

func TestRealOneshotRemainAfterExit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	r := newReal(t, realUnit("oneshot-it.service", func(s *unit.Service) {
		s.Type = unit.Oneshot
		s.RemainAfterExit = true
		s.ExecStart = []unit.Command{
			cmd("/bin/sh", "-c", "echo one >> "+out),
			cmd("/bin/sh", "-c", "echo two >> "+out),
		}
		s.ExecStop = []unit.Command{cmd("/bin/sh", "-c", "echo stop $SERVICE_RESULT >> "+out)}
		s.RuntimeDirectory = []string{"oneshot-it"}
	}))
	if err := r.s.Start(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if st := r.s.Status(); st.SubState != Exited || st.ActiveState != ActiveActive {
		t.Fatalf("status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(r.root, "run/oneshot-it")); err != nil {
		t.Fatalf("RuntimeDirectory: %v", err)
	}
	if err := r.s.Stop(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if string(b) != "one\ntwo\nstop success\n" {
		t.Fatalf("out %q", b)
	}
	if _, err := os.Stat(filepath.Join(r.root, "run/oneshot-it")); !os.IsNotExist(err) {
		t.Fatalf("RuntimeDirectory left after stop: %v", err)
	}
}

func TestRealUserNobody(t *testing.T) {
	r := newReal(t, realUnit("user-it.service", func(s *unit.Service) {
		s.User = "nobody"
		s.ExecStart = []unit.Command{cmd("/bin/sleep", "1000")}
	}))
	if err := r.s.Start(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	acc, err := lookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.s.Status().MainPID))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", acc.uid, acc.uid, acc.uid, acc.uid)
	if !strings.Contains(string(b), want+"\n") {
		t.Fatalf("status lacks %q:\n%s", want, b)
	}
}

func TestRealExecFailure(t *testing.T) {
	r := newReal(t, realUnit("noexec-it.service", func(s *unit.Service) {
		s.ExecStart = []unit.Command{cmd("/nonexistent/binary")}
	}))
	if err := r.s.Start(ctx10(t)); !errors.Is(err, ErrStartFailed) {
		t.Fatalf("Start: %v, want a failed start", err)
	}
	if st := r.s.Status(); st.SubState != Failed || st.ExecMainStatus != proc.ExitExec || st.Result != ExitCode {
		t.Fatalf("status %+v", st)
	}
}

func TestRealWatchdogAborts(t *testing.T) {
	r := newReal(t, realUnit("wd-it.service", func(s *unit.Service) {
		s.Type = unit.Notify
		s.WatchdogSec = 200 * time.Millisecond
		s.ExecStart = []unit.Command{cmd(testBinary(t))}
		s.Environment = []string{helperEnv + "=notify"} // READY=1, then never WATCHDOG=1
	}))
	if err := r.s.Start(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	main := r.s.Status().MainPID
	waitFor(t, "watchdog failure", func() bool { return r.s.Status().SubState == Failed })
	if st := r.s.Status(); st.Result != Watchdog || alive(main) {
		t.Fatalf("status %+v, main alive %v", st, alive(main))
	}
	if !r.hasLog(t, logs.Core, "Watchdog timeout (limit 200ms)!") {
		t.Errorf("log %v", r.logLines(t))
	}
}
