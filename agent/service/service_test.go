package service

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/agent/unit"
)

func TestStartByType(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(*unit.Service)
		notify    bool // send READY=1 from the main PID while Start waits
		wantState SubState
		wantMain  bool
	}{
		{name: "simple", wantState: Running, wantMain: true},
		{name: "exec", mod: func(s *unit.Service) { s.Type = unit.ExecType }, wantState: Running, wantMain: true},
		{name: "idle", mod: func(s *unit.Service) { s.Type = unit.Idle }, wantState: Running, wantMain: true},
		{name: "oneshot", mod: func(s *unit.Service) {
			s.Type = unit.Oneshot
			s.ExecStart = []unit.Command{cmd("true"), cmd("true")}
		}, wantState: Dead},
		{name: "oneshot RemainAfterExit", mod: func(s *unit.Service) {
			s.Type = unit.Oneshot
			s.RemainAfterExit = true
			s.ExecStart = []unit.Command{cmd("true"), cmd("true")}
		}, wantState: Exited},
		{name: "forking guessed main PID", mod: func(s *unit.Service) {
			s.Type = unit.Forking
			s.ExecStart = []unit.Command{cmd("fork")}
		}, wantState: Running, wantMain: true},
		{name: "notify", mod: func(s *unit.Service) { s.Type = unit.Notify }, notify: true, wantState: Running, wantMain: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newUnit(tc.mod))
			if tc.notify {
				go func() {
					// A sender that is not the main PID must be ignored.
					for f.s.Status().MainPID == 0 {
						time.Sleep(time.Millisecond)
					}
					f.notify(1, map[string]string{"READY": "1"})
					time.Sleep(20 * time.Millisecond)
					if st := f.s.Status().SubState; st != StartState {
						t.Errorf("READY=1 from a foreign PID moved the unit to %s", st)
					}
					f.notify(f.s.Status().MainPID, map[string]string{"READY": "1", "STATUS": "serving"})
				}()
			}
			if err := f.start(t); err != nil {
				t.Fatalf("Start: %v", err)
			}
			st := f.s.Status()
			if st.SubState != tc.wantState || st.Result != Success {
				t.Fatalf("after Start: %s/%s, want %s/success", st.SubState, st.Result, tc.wantState)
			}
			if (st.MainPID != 0) != tc.wantMain {
				t.Fatalf("MainPID = %d, want set: %v", st.MainPID, tc.wantMain)
			}
			if tc.notify && st.StatusText != "serving" {
				t.Errorf("StatusText = %q", st.StatusText)
			}
			if tc.name == "oneshot" && !f.w.logged("Finished Test Service.") {
				t.Errorf("no Finished line: %q", f.w.lines)
			}
			if tc.wantState == Running {
				if !f.w.logged("Started Test Service.") {
					t.Errorf("no Started line: %q", f.w.lines)
				}
				f.stop(t)
				if st := f.s.Status(); st.SubState != Dead || st.Result != Success {
					t.Fatalf("after Stop: %s/%s", st.SubState, st.Result)
				}
				if f.w.sent("TERM") == 0 {
					t.Errorf("no SIGTERM sent: %v", f.w.signals)
				}
			}
		})
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*unit.Service)
		err    error
		state  SubState
		result Result
		line   string
	}{
		{name: "ExecStartPre fails", mod: func(s *unit.Service) { s.ExecStartPre = []unit.Command{cmd("false")} },
			err: ErrStartFailed, state: Failed, result: ExitCode, line: "Control process exited, code=exited, status=1/FAILURE"},
		{name: "ExecStartPre '-' ignored", mod: func(s *unit.Service) {
			s.ExecStartPre = []unit.Command{{Path: "false", Args: []string{"false"}, Flags: unit.IgnoreFailure}}
		}, state: Running, result: Success},
		{name: "ExecCondition skips", mod: func(s *unit.Service) { s.ExecCondition = []unit.Command{cmd("false")} },
			err: ErrConditionFailed, state: Dead, result: SkipCondition, line: "Condition check resulted in"},
		{name: "ExecCondition 255 fails", mod: func(s *unit.Service) { s.ExecCondition = []unit.Command{cmd("exit:255")} },
			err: ErrStartFailed, state: Failed, result: ExitCode},
		{name: "oneshot fails", mod: func(s *unit.Service) {
			s.Type = unit.Oneshot
			s.ExecStart = []unit.Command{cmd("true"), cmd("exit:3"), cmd("true")}
		}, err: ErrStartFailed, state: Failed, result: ExitCode, line: "Main process exited, code=exited, status=3/NOTIMPLEMENTED"},
		{name: "oneshot SuccessExitStatus", mod: func(s *unit.Service) {
			s.Type = unit.Oneshot
			s.ExecStart = []unit.Command{cmd("exit:3")}
			s.SuccessExitStatus = unit.ExitStatusSet{Codes: []int{3}}
		}, state: Dead, result: Success},
		{name: "forking start process fails", mod: func(s *unit.Service) {
			s.Type = unit.Forking
			s.ExecStart = []unit.Command{cmd("false")}
		}, err: ErrStartFailed, state: Failed, result: ExitCode},
		{name: "notify main exits before READY", mod: func(s *unit.Service) {
			s.Type = unit.Notify
			s.ExecStart = []unit.Command{cmd("true")}
		}, err: ErrStartFailed, state: Failed, result: Protocol},
		{name: "spawn fails", mod: func(s *unit.Service) { s.ExecStart = []unit.Command{cmd("spawnfail")} },
			err: ErrStartFailed, state: Failed, result: Resources, line: "Failed to execute spawnfail"},
		{name: "exec fails", mod: func(s *unit.Service) { s.ExecStart = []unit.Command{cmd("execfail")} },
			err: ErrStartFailed, state: Failed, result: ExitCode, line: "Main process exited, code=exited, status=203/EXEC"},
		{name: "ExecStartPost exec fails", mod: func(s *unit.Service) { s.ExecStartPost = []unit.Command{cmd("execfail")} },
			err: ErrStartFailed, state: Failed, result: ExitCode, line: "status=203/EXEC"},
		{name: "start timeout", mod: func(s *unit.Service) {
			s.Type = unit.Notify
			s.TimeoutStartSec = 30 * time.Millisecond
		}, err: ErrStartFailed, state: Failed, result: Timeout, line: "Start operation timed out. Terminating."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newUnit(tc.mod))
			err := f.start(t)
			if !errors.Is(err, tc.err) && !(tc.err == nil && err == nil) {
				t.Fatalf("Start: %v, want %v", err, tc.err)
			}
			st := f.s.Status()
			if st.SubState != tc.state || st.Result != tc.result {
				t.Fatalf("state %s/%s, want %s/%s; log %q", st.SubState, st.Result, tc.state, tc.result, f.w.lines)
			}
			if tc.line != "" && !f.w.logged(tc.line) {
				t.Errorf("log lacks %q: %q", tc.line, f.w.lines)
			}
			if tc.result != Success && tc.result != SkipCondition && !f.w.logged("Failed with result '"+string(tc.result)+"'.") {
				t.Errorf("log lacks the result line: %q", f.w.lines)
			}
		})
	}
}

func TestShouldRestart(t *testing.T) {
	type outcome struct {
		result       Result
		code, status int
	}
	clean := outcome{Success, cldExited, 0}
	fail := outcome{ExitCode, cldExited, 1}
	killed := outcome{Signal, cldKilled, int(syscall.SIGKILL)}
	dumped := outcome{CoreDump, cldDumped, int(syscall.SIGSEGV)}
	wd := outcome{Watchdog, cldKilled, int(syscall.SIGABRT)}
	tmo := outcome{Timeout, cldKilled, int(syscall.SIGKILL)}
	all := []outcome{clean, fail, killed, dumped, wd, tmo}
	tests := []struct {
		policy unit.RestartPolicy
		want   []bool // per outcome in `all`
	}{
		{unit.RestartNo, []bool{false, false, false, false, false, false}},
		{unit.RestartAlways, []bool{true, true, true, true, true, true}},
		{unit.RestartOnSuccess, []bool{true, false, false, false, false, false}},
		{unit.RestartOnFailure, []bool{false, true, true, true, true, true}},
		{unit.RestartOnAbnormal, []bool{false, false, true, true, true, true}},
		{unit.RestartOnAbort, []bool{false, false, true, true, false, false}},
		{unit.RestartOnWatchdog, []bool{false, false, false, false, true, false}},
	}
	for _, tc := range tests {
		for i, o := range all {
			s := New(newUnit(func(s *unit.Service) { s.Restart = tc.policy }), Deps{})
			s.st.Result, s.st.ExecMainCode, s.st.ExecMainStatus = o.result, o.code, o.status
			if got := s.shouldRestart(); got != tc.want[i] {
				t.Errorf("Restart=%s, result %s status %d: restart %v, want %v", tc.policy, o.result, o.status, got, tc.want[i])
			}
		}
	}
	// Prevent wins over the policy, Force over Restart=no; a stop forbids.
	s := New(newUnit(func(s *unit.Service) {
		s.Restart = unit.RestartAlways
		s.RestartPreventExitStatus = unit.ExitStatusSet{Codes: []int{1}}
	}), Deps{})
	s.st.Result, s.st.ExecMainCode, s.st.ExecMainStatus = ExitCode, cldExited, 1
	if s.shouldRestart() {
		t.Error("RestartPreventExitStatus=1 did not prevent the restart")
	}
	s = New(newUnit(func(s *unit.Service) {
		s.RestartForceExitStatus = unit.ExitStatusSet{Signals: []int{int(syscall.SIGUSR1)}}
	}), Deps{})
	s.st.Result, s.st.ExecMainCode, s.st.ExecMainStatus = Signal, cldKilled, int(syscall.SIGUSR1)
	if !s.shouldRestart() {
		t.Error("RestartForceExitStatus=SIGUSR1 did not force the restart")
	}
	s.forbidRestart = true
	if s.shouldRestart() {
		t.Error("restart after an explicit stop")
	}
}

func TestRestartThenStartLimit(t *testing.T) {
	u := newUnit(func(s *unit.Service) {
		s.Restart = unit.RestartOnFailure
		s.ExecStart = []unit.Command{cmd("sleep")}
	})
	u.StartLimitBurst = 2
	f := newFixture(t, u)
	for i := 1; i <= 2; i++ {
		if err := f.start(t); err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		main := f.s.Status().MainPID
		if err := f.w.kill(main, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		st := f.waitState(t, AutoRestart)
		if st.Result != Signal || st.ActiveState != ActiveActivating || st.Job {
			t.Fatalf("after crash: %+v", st)
		}
		// RestartSec later the manager is asked for a restart job.
		deadline := time.Now().Add(5 * time.Second)
		for f.s.Status().NRestarts != i {
			if time.Now().After(deadline) {
				t.Fatalf("NRestarts = %d, want %d", f.s.Status().NRestarts, i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		if i == 2 {
			// The job engine's restart job stops first: quietly dead, and
			// the start that follows still counts as the restart.
			f.stop(t)
			if st := f.s.Status(); st.SubState != Dead || st.NRestarts != 2 {
				t.Fatalf("stop half of the restart job: %+v", st)
			}
		}
	}
	if !f.w.logged("Scheduled restart job, restart counter is at 2.") || len(f.w.restart) != 2 {
		t.Fatalf("restart requests %v, log %q", f.w.restart, f.w.lines)
	}
	err := f.start(t)
	if !errors.Is(err, ErrStartLimit) || !strings.Contains(err.Error(), "t.service") {
		t.Fatalf("third start: %v, want start limit", err)
	}
	if st := f.s.Status(); st.SubState != Failed || st.Result != StartLimitHit {
		t.Fatalf("state %s/%s", st.SubState, st.Result)
	}
	f.s.ResetFailed()
	if st := f.s.Status(); st.SubState != Dead || st.NRestarts != 0 {
		t.Fatalf("after ResetFailed: %+v", st)
	}
	if err := f.start(t); err != nil {
		t.Fatalf("start after ResetFailed: %v", err)
	}
	f.stop(t)
	if st := f.s.Status(); st.SubState != Dead {
		t.Fatalf("after stop: %s (a stop must not restart)", st.SubState)
	}
}

func TestSimpleExitWithRemainAfterExit(t *testing.T) {
	tests := []struct {
		remain bool
		path   string
		want   SubState
		result Result
	}{
		{false, "exit:0", Dead, Success},
		{true, "exit:0", Exited, Success},
		{false, "exit:1", Failed, ExitCode},
		{true, "exit:1", Failed, ExitCode},
	}
	for _, tc := range tests {
		f := newFixture(t, newUnit(func(s *unit.Service) {
			s.RemainAfterExit = tc.remain
			s.ExecStart = []unit.Command{cmd(tc.path)}
		}))
		if err := f.start(t); err != nil {
			t.Fatalf("%s: Start: %v", tc.path, err)
		}
		st := f.waitState(t, tc.want)
		if st.Result != tc.result || st.Job {
			t.Errorf("%s remain=%v: %+v", tc.path, tc.remain, st)
		}
	}
}

func TestStopTimeoutKillsAndExecStopEnv(t *testing.T) {
	f := newFixture(t, newUnit(func(s *unit.Service) {
		s.ExecStart = []unit.Command{cmd("stubborn")}
		s.ExecStop = []unit.Command{cmd("true", "$MAINPID")}
		s.ExecStopPost = []unit.Command{cmd("true", "${SERVICE_RESULT}", "$EXIT_CODE")}
		s.TimeoutStopSec = 30 * time.Millisecond
	}))
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	main := f.s.Status().MainPID
	f.stop(t)
	st := f.s.Status()
	if st.SubState != Failed || st.Result != Timeout {
		t.Fatalf("state %s/%s, want failed/timeout", st.SubState, st.Result)
	}
	if f.w.sent("TERM") == 0 || f.w.sent("KILL") == 0 {
		t.Fatalf("signals %v, want TERM then KILL", f.w.signals)
	}
	if !f.w.logged("State 'stop-sigterm' timed out. Killing.") {
		t.Errorf("log %q", f.w.lines)
	}
	stop := f.w.spec(1)
	if got := strings.Join(stop.Argv, " "); got != "true "+itoa(main) {
		t.Errorf("ExecStop argv %q", got)
	}
	post := f.w.spec(2)
	if got := strings.Join(post.Argv, " "); got != "true timeout killed" {
		t.Errorf("ExecStopPost argv %q", got)
	}
}

func TestKillModes(t *testing.T) {
	for _, mode := range []unit.KillMode{unit.KillControlGroup, unit.KillProcess, unit.KillMixed} {
		f := newFixture(t, newUnit(func(s *unit.Service) {
			s.KillMode = mode
			s.Type = unit.Forking
			s.ExecStart = []unit.Command{cmd("fork")}
		}))
		if err := f.start(t); err != nil {
			t.Fatal(err)
		}
		f.w.mu.Lock()
		f.w.next++
		stray := f.w.next
		f.w.alive[stray] = "sleep" // a second process in the cgroup
		f.w.mu.Unlock()
		f.stop(t)
		f.w.mu.Lock()
		_, left := f.w.alive[stray]
		f.w.mu.Unlock()
		if want := mode == unit.KillProcess; left != want {
			t.Errorf("KillMode=%s: stray process left %v, want %v (signals %v)", mode, left, want, f.w.signals)
		}
	}
}

func TestWatchdog(t *testing.T) {
	f := newFixture(t, newUnit(func(s *unit.Service) {
		s.Type = unit.Notify
		s.WatchdogSec = 40 * time.Millisecond
		s.Restart = unit.RestartOnWatchdog
	}))
	go func() {
		for f.s.Status().MainPID == 0 {
			time.Sleep(time.Millisecond)
		}
		f.notify(f.s.Status().MainPID, map[string]string{"READY": "1"})
	}()
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	if got := envOf(f.w.spec(0))["WATCHDOG_USEC"]; got != "40000" {
		t.Errorf("WATCHDOG_USEC=%q", got)
	}
	st := f.waitState(t, AutoRestart)
	if st.Result != Watchdog || f.w.sent("ABRT") == 0 || !f.w.logged("Watchdog timeout") {
		t.Fatalf("%+v signals %v log %q", st, f.w.signals, f.w.lines)
	}
}

func TestNotifyReloadAndStopping(t *testing.T) {
	f := newFixture(t, newUnit(func(s *unit.Service) {
		s.Type = unit.Notify
		s.ExecReload = []unit.Command{cmd("true")}
	}))
	go func() {
		for f.s.Status().MainPID == 0 {
			time.Sleep(time.Millisecond)
		}
		f.notify(f.s.Status().MainPID, map[string]string{"READY": "1"})
	}()
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	main := f.s.Status().MainPID
	if err := f.s.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	f.notify(main, map[string]string{"RELOADING": "1"})
	if st := f.s.Status().SubState; st != Reloading {
		t.Fatalf("after RELOADING=1: %s", st)
	}
	f.notify(main, map[string]string{"READY": "1"})
	if st := f.s.Status().SubState; st != Running {
		t.Fatalf("after READY=1: %s", st)
	}
	f.notify(main, map[string]string{"STOPPING": "1"})
	if st := f.s.Status().SubState; st != StopSigterm {
		t.Fatalf("after STOPPING=1: %s", st)
	}
	_ = f.w.kill(main, syscall.SIGTERM)
	f.waitState(t, Dead)
}

func TestEnvironmentAndDirectories(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("# comment\nFROMFILE='a b'\nOVER=file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, newUnit(func(s *unit.Service) {
		s.Type = unit.Notify
		s.ExecStart = []unit.Command{cmd("sleep", "$WORDS", "${WORDS}", "x${FROMFILE}y", "$UNSET", "$$")}
		s.Environment = []string{"WORDS=one two", "OVER=env", "GONE=1"}
		s.EnvironmentFiles = []unit.EnvFile{{Path: envFile}, {Path: filepath.Join(dir, "missing"), Optional: true}}
		s.UnsetEnvironment = []string{"GONE"}
		s.RuntimeDirectory = []string{"t1"}
		s.StateDirectory = []string{"t1"}
		s.User = "nobody"
	}))
	ctx, cancel := contextWithTimeout(50 * time.Millisecond)
	defer cancel()
	_ = f.s.Start(ctx) // notify: stays activating; we only look at the spawn
	sp := f.w.spec(0)
	env := envOf(sp)
	want := map[string]string{
		"PATH": defaultPath, "NOTIFY_SOCKET": "/run/corral/notify.sock", "FROMFILE": "a b", "OVER": "file",
		"USER": "nobody", "LOGNAME": "nobody",
		"RUNTIME_DIRECTORY": filepath.Join(f.s.d.Root, "run/t1"), "STATE_DIRECTORY": filepath.Join(f.s.d.Root, "var/lib/t1"),
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["GONE"]; ok {
		t.Error("UnsetEnvironment=GONE not applied")
	}
	if len(env["INVOCATION_ID"]) != 32 {
		t.Errorf("INVOCATION_ID=%q", env["INVOCATION_ID"])
	}
	if got := strings.Join(sp.Argv, "|"); got != "sleep|one|two|one two|xa by|$" {
		t.Errorf("argv %q", got)
	}
	if sp.User != "nobody" || len(sp.CgroupProcs) != 1 || !sp.Setsid {
		t.Errorf("spec %+v", sp)
	}
	fi, err := os.Stat(filepath.Join(f.s.d.Root, "run/t1"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("RuntimeDirectory: %v %v", fi, err)
	}
	f.stop(t)
	if _, err := os.Stat(filepath.Join(f.s.d.Root, "run/t1")); !os.IsNotExist(err) {
		t.Errorf("RuntimeDirectory not removed on stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.s.d.Root, "var/lib/t1")); err != nil {
		t.Errorf("StateDirectory removed on stop: %v", err)
	}
}

func TestParseEnvFile(t *testing.T) {
	in := "A=1\n  # c\n; c\nB = two words  \nC=\"q \\\"x\\\" $y\"\nD='lit \\n'\nE=a\\ b\nnoequals\nF=\"multi\nline\"\nG=v # trailing\n"
	got := strings.Join(parseEnvFile([]byte(in)), "|")
	want := "A=1|B=two words|C=q \"x\" $y|D=lit \\n|E=a b|F=multi\nline|G=v"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestExpandArgs(t *testing.T) {
	env := map[string]string{"A": "x y", "E": ""}
	tests := []struct{ in, want []string }{
		{[]string{"$A"}, []string{"x", "y"}},
		{[]string{"${A}"}, []string{"x y"}},
		{[]string{"$NOPE", "z"}, []string{"z"}},
		{[]string{"pre${A}post"}, []string{"prex ypost"}},
		{[]string{"${E:-def}", "${A:+alt}", "${E:+alt}"}, []string{"def", "alt", ""}},
		{[]string{"$$A", "a$b"}, []string{"$A", "a$b"}},
	}
	for _, tc := range tests {
		if got := expandArgs(tc.in, env); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q → %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestChangesReported(t *testing.T) {
	f := newFixture(t, newUnit(nil))
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	f.stop(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	var seq []string
	for _, c := range f.changes {
		seq = append(seq, string(c.SubState))
		if !c.Job {
			t.Errorf("change to %s not marked as requested by a job", c.SubState)
		}
	}
	if got := strings.Join(seq, ","); got != "running,stop-sigterm,dead" {
		t.Errorf("changes %s", got)
	}
}
