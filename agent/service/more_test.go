package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/unit"
	"github.com/google/go-cmp/cmp"
)

func TestForkingPIDFile(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	f := newFixture(t, newUnit(func(s *unit.Service) {
		s.Type = unit.Forking
		s.PIDFile = pidFile
		s.ExecStart = []unit.Command{cmd("fork-pidfile:" + pidFile)}
	}))
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	if st := f.s.Status(); st.SubState != Running || st.MainPID != os.Getpid() {
		t.Fatalf("status %+v, want main PID from the PID file (%d)", st, os.Getpid())
	}
	f.stop(t)
}

func TestForkingPIDFileMissing(t *testing.T) {
	f := newFixture(t, newUnit(func(s *unit.Service) {
		s.Type = unit.Forking
		s.PIDFile = filepath.Join(t.TempDir(), "never")
		s.ExecStart = []unit.Command{cmd("true")}
		s.TimeoutStartSec = 100 * time.Millisecond
	}))
	err := f.start(t)
	if !errors.Is(err, ErrStartFailed) {
		t.Fatalf("Start: %v", err)
	}
	if st := f.s.Status(); st.Result != Timeout {
		t.Fatalf("result %s, want timeout (PID file never written)", st.Result)
	}
}

func TestStopWhileStarting(t *testing.T) {
	f := newFixture(t, newUnit(func(s *unit.Service) { s.Type = unit.Notify }))
	errc := make(chan error, 1)
	go func() { errc <- f.start(t) }()
	f.waitState(t, StartState)
	f.stop(t)
	if err := <-errc; !errors.Is(err, ErrCanceled) {
		t.Fatalf("Start: %v, want canceled", err)
	}
	if st := f.s.Status(); st.SubState != Dead || st.Result != Success {
		t.Fatalf("status %s/%s", st.SubState, st.Result)
	}
}

func TestKill(t *testing.T) {
	f := newFixture(t, newUnit(func(s *unit.Service) { s.Restart = unit.RestartNo }))
	if err := f.s.Kill("control", syscall.SIGTERM); err == nil {
		t.Fatal("Kill control without a control process succeeded")
	}
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Kill("main", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := f.waitState(t, Failed)
	if st.Result != Signal || st.ExecMainCode != cldKilled || st.ExecMainStatus != int(syscall.SIGKILL) {
		t.Fatalf("status %+v", st)
	}
	if !f.w.logged("Main process exited, code=killed, signal=KILL") {
		t.Errorf("log %q", f.w.lines)
	}
}

func TestNotifyAccess(t *testing.T) {
	const stranger = 3_999_999
	tests := []struct {
		access  unit.NotifyAccess
		typ     unit.ServiceType
		main    bool // send from the main PID
		control bool
		other   bool // a non-main process of the cgroup
		want    bool
	}{
		{access: unit.NotifyNone, typ: unit.Simple, main: true, want: false},
		{access: "", typ: unit.Notify, main: true, want: true},
		{access: unit.NotifyMain, typ: unit.Simple, main: true, want: true},
		{access: unit.NotifyMain, typ: unit.Simple, other: true, want: false},
		{access: unit.NotifyExecAccess, typ: unit.Simple, control: true, want: true},
		{access: unit.NotifyExecAccess, typ: unit.Simple, other: true, want: false},
		{access: unit.NotifyAll, typ: unit.Simple, other: true, want: true},
		{access: unit.NotifyAll, typ: unit.Simple, want: false}, // a stranger
	}
	for _, tc := range tests {
		f := newFixture(t, newUnit(func(s *unit.Service) {
			s.NotifyAccess = tc.access
			s.Type = unit.Simple
			if tc.typ == unit.Notify {
				s.Type = unit.Notify
			}
			s.ExecReload = []unit.Command{cmd("stubborn")}
		}))
		s := f.s
		s.mu.Lock()
		s.u.Service.Type = unit.Simple // judge access only, not the Type's start logic
		s.u.Service.NotifyAccess = tc.access
		if tc.typ == unit.Notify {
			s.u.Service.Type = unit.Notify
		}
		s.st.MainPID, s.st.ControlPID = 100, 101
		f.w.mu.Lock()
		f.w.alive[102] = "sleep"
		f.w.mu.Unlock()
		pid := stranger
		switch {
		case tc.main:
			pid = 100
		case tc.control:
			pid = 101
		case tc.other:
			pid = 102
		}
		got := s.notifyAllowed(pid)
		s.st.MainPID, s.st.ControlPID = 0, 0
		s.mu.Unlock()
		if got != tc.want {
			t.Errorf("NotifyAccess=%q Type=%s pid %d: allowed %v, want %v", tc.access, tc.typ, pid, got, tc.want)
		}
	}
}

func TestExtendTimeout(t *testing.T) {
	f := newFixture(t, newUnit(func(s *unit.Service) {
		s.Type = unit.Notify
		s.TimeoutStartSec = 60 * time.Millisecond
	}))
	errc := make(chan error, 1)
	go func() { errc <- f.start(t) }()
	st := f.waitState(t, StartState)
	f.notify(st.MainPID, map[string]string{"EXTEND_TIMEOUT_USEC": "400000"})
	time.Sleep(150 * time.Millisecond) // past the original timeout
	if st := f.s.Status(); st.SubState != StartState {
		t.Fatalf("EXTEND_TIMEOUT_USEC ignored: %s/%s", st.SubState, st.Result)
	}
	f.notify(st.MainPID, map[string]string{"READY": "1"})
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestSocketActivationSpec(t *testing.T) {
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	defer w1.Close()
	t.Run("Sockets", func(t *testing.T) {
		f := newFixture(t, newUnit(func(s *unit.Service) { s.ExecStartPre = []unit.Command{cmd("true")} }))
		f.s.d.SocketFiles = func() ([]*os.File, []string) { return []*os.File{r1, w1}, []string{"a", "b"} }
		if err := f.start(t); err != nil {
			t.Fatal(err)
		}
		pre, main := f.w.spec(0), f.w.spec(1)
		if len(pre.ExtraFiles) != 0 || envOf(pre)["LISTEN_FDS"] != "" {
			t.Errorf("ExecStartPre got the sockets: %+v", pre)
		}
		env := envOf(main)
		if len(main.ExtraFiles) != 2 || !main.SetListenPID || env["LISTEN_FDS"] != "2" || env["LISTEN_FDNAMES"] != "a:b" {
			t.Errorf("main spec %+v env %v", main, env)
		}
	})
	t.Run("Accept=yes connection on stdin", func(t *testing.T) {
		f := newFixture(t, newUnit(func(s *unit.Service) {
			s.StandardInput = "socket"
			s.StandardOutput = unit.Output{Kind: "inherit"}
			s.StandardError = unit.Output{Kind: "journal"}
		}))
		f.s.d.Conn = r1
		if err := f.start(t); err != nil {
			t.Fatal(err)
		}
		sp := f.w.spec(0)
		if sp.Stdin != r1 || sp.Stdout != r1 || sp.Stderr == nil || sp.Stderr == r1 || len(sp.ExtraFiles) != 1 || envOf(sp)["LISTEN_FDS"] != "1" {
			t.Errorf("spec %+v", sp)
		}
	})
}

func TestStandardOutputFiles(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range []string{"file", "append", "truncate"} {
		p := filepath.Join(dir, kind)
		if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, newUnit(func(s *unit.Service) {
			s.StandardOutput = unit.Output{Kind: kind, Path: p}
			s.StandardError = unit.Output{Kind: "null"}
		}))
		if err := f.start(t); err != nil {
			t.Fatal(err)
		}
		sp := f.w.spec(0)
		if sp.Stderr != nil {
			t.Errorf("%s: StandardError=null gave %v", kind, sp.Stderr)
		}
		// The file was closed after the spawn; check its mode by name.
		b, _ := os.ReadFile(p)
		if (kind == "truncate") != (len(b) == 0) {
			t.Errorf("StandardOutput=%s: content %q after open", kind, b)
		}
		if sp.Stdout == nil || !strings.HasSuffix(sp.Stdout.Name(), kind) {
			t.Errorf("StandardOutput=%s: stdout %v", kind, sp.Stdout)
		}
	}
}

func TestReloadErrors(t *testing.T) {
	f := newFixture(t, newUnit(nil))
	if err := f.s.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "t.service") {
		t.Fatalf("reload of an inactive unit: %v", err)
	}
	if err := f.start(t); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "ExecReload") {
		t.Fatalf("reload without ExecReload: %v", err)
	}
	f.s.Update(newUnit(func(s *unit.Service) { s.ExecReload = []unit.Command{cmd("false")} }))
	if err := f.s.Reload(context.Background()); err == nil {
		t.Fatal("failing ExecReload reported success")
	}
	if st := f.s.Status(); st.SubState != Running {
		t.Fatalf("after a failed reload: %s, want running", st.SubState)
	}
}

func TestAdjustChangesEverySpawnedSpec(t *testing.T) {
	u := newUnit(func(s *unit.Service) {
		s.ExecStartPre = []unit.Command{cmd("true")}
	})
	var kinds []string
	f := newFixture(t, u)
	f.s.d.Adjust = func(sp *proc.Spec, kind string, main bool) {
		kinds = append(kinds, kind+"/"+strconv.FormatBool(main))
		sp.Namespaces = map[string]string{"net": "/proc/1/ns/net"}
	}
	if err := f.start(t); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if diff := cmp.Diff([]string{"ExecStartPre/false", "ExecStart/true"}, kinds); diff != "" {
		t.Errorf("Adjust calls (-want +got):\n%s", diff)
	}
	for i := 0; i < 2; i++ {
		if got := f.w.spec(i).Namespaces["net"]; got != "/proc/1/ns/net" {
			t.Errorf("spec %d: Namespaces[net] = %q, want the adjusted value", i, got)
		}
	}
	f.stop(t)
}
