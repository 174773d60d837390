package proc

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	MaybeTrampoline()
	os.Exit(m.Run())
}

// waitPID collects one child that this test started. The agent never does
// this (the reaper owns wait4), but this package has no reaper.
func waitPID(t testing.TB, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("wait4 %d: %v", pid, err)
		}
		return ws
	}
}

// run starts spec with its stdout captured, and returns stdout and status.
func run(t *testing.T, spec *Spec) (string, unix.WaitStatus, int, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	spec.Stdout = w
	spec.Stderr = w
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, err := (&Spawner{}).Start(ctx, spec)
	w.Close()
	if pid <= 0 {
		t.Fatalf("Start returned pid %d, err %v", pid, err)
	}
	out, _ := io.ReadAll(r)
	return string(out), waitPID(t, pid), pid, err
}

func sh(script string) *Spec {
	return &Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin", "FOO=bar"}}
}

func ptr[T any](v T) *T { return &v }

func TestSpawnEnvironment(t *testing.T) {
	oom, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := strconv.Atoi(strings.TrimSpace(string(oom)))
	dir := t.TempDir()
	tests := []struct {
		name   string
		script string
		mod    func(s *Spec)
		want   string
	}{
		{"env is exactly Env", `env | sort | tr '\n' ' '`, nil, "FOO=bar PATH=/usr/bin:/bin PWD=/ "},
		{"default dir is /", `pwd`, nil, "/\n"},
		{"dir", `pwd`, func(s *Spec) { s.Dir = dir }, dir + "\n"},
		{"optional missing dir", `pwd`, func(s *Spec) { s.Dir = "/nonexistent/x"; s.DirOptional = true }, "/\n"},
		{"umask", `umask`, func(s *Spec) { s.Umask = ptr(uint32(0o027)) }, "0027\n"},
		{"nice", `cut -d' ' -f19 /proc/self/stat`, func(s *Spec) { s.Nice = ptr(7) }, "7\n"},
		{"rlimit", `ulimit -n; ulimit -H -n`, func(s *Spec) {
			s.Rlimits = []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 123, Max: 456}}
		}, "123\n456\n"},
		// Above what may be raised (nr_open, or the hard limit without
		// CAP_SYS_RESOURCE): clamped to the current hard limit.
		{"rlimit clamped", `ulimit -n; ulimit -H -n`, func(s *Spec) {
			s.Rlimits = []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 100, Max: 1 << 30}}
		}, "100\n" + strconv.FormatUint(hardNofile(t), 10) + "\n"},
		{"oom raise", `cat /proc/self/oom_score_adj`, func(s *Spec) { s.OOMScoreAdj = ptr(cur + 100) }, strconv.Itoa(cur+100) + "\n"},
		// We lack CAP_SYS_RESOURCE: lowering is clamped, never fatal.
		{"oom lower clamped", `cat /proc/self/oom_score_adj`, func(s *Spec) { s.OOMScoreAdj = ptr(-1000) }, strconv.Itoa(cur) + "\n"},
		{"setsid", `test "$(cut -d' ' -f6 /proc/$$/stat)" = "$$" && echo leader`, func(s *Spec) { s.Setsid = true }, "leader\n"},
		{"no setsid", `test "$(cut -d' ' -f6 /proc/$$/stat)" = "$$" || echo follower`, nil, "follower\n"},
		{"no new privs", `grep NoNewPrivs /proc/self/status | tr -d ' \t'`, func(s *Spec) { s.NoNewPrivileges = true }, "NoNewPrivs:1\n"},
		{"user by name", `id -u; id -g; id -G; echo $HOME $USER $LOGNAME`, func(s *Spec) { s.User = "nobody" },
			"65534\n65534\n65534\n/nonexistent nobody nobody\n"},
		{"numeric ids", `id -u; id -g; id -G`, func(s *Spec) {
			s.User = "12345"
			s.Group = "23456"
			s.SupplementaryGroups = []string{"34567", "nogroup"}
		}, "12345\n23456\n23456 34567 65534\n"},
		{"group only", `id -u; id -g`, func(s *Spec) { s.Group = "nogroup" }, "0\n65534\n"},
		{"home dir", `pwd`, func(s *Spec) { s.User = "root"; s.Dir = "~" }, "/root\n"},
		{"path search in Env PATH", ``, func(s *Spec) { s.Path = "echo"; s.Argv = []string{"echo", "hi"} }, "hi\n"},
		{"path search default", ``, func(s *Spec) {
			s.Path = "echo"
			s.Argv = []string{"echo", "hi"}
			s.Env = nil
		}, "hi\n"},
		{"argv defaults to path", ``, func(s *Spec) { s.Path = "/bin/pwd"; s.Argv = nil }, "/\n"},
		{"listen pid", `test "$LISTEN_PID" = "$$" && echo ok`, func(s *Spec) {
			s.SetListenPID = true
			s.Env = append(s.Env, "LISTEN_PID=1")
		}, "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sh(tt.script)
			if tt.mod != nil {
				tt.mod(s)
			}
			out, ws, _, err := run(t, s)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if out != tt.want || ws.ExitStatus() != 0 {
				t.Fatalf("output %q status %d, want %q status 0", out, ws.ExitStatus(), tt.want)
			}
		})
	}
}

func TestSpawnFailures(t *testing.T) {
	tests := []struct {
		name string
		mod  func(s *Spec)
		code int
		msg  string
	}{
		{"chdir", func(s *Spec) { s.Dir = "/nonexistent/dir" }, ExitChdir, "chdir /nonexistent/dir: no such file or directory"},
		{"exec", func(s *Spec) { s.Path = "/nonexistent/prog" }, ExitExec, "exec /nonexistent/prog: no such file or directory"},
		{"exec not in path", func(s *Spec) { s.Path = "no-such-prog-xyz" }, ExitExec, "exec no-such-prog-xyz: not found in PATH"},
		{"exec not executable", func(s *Spec) { s.Path = "/etc/passwd" }, ExitExec, "exec /etc/passwd: permission denied"},
		{"user", func(s *Spec) { s.User = "no-such-user-xyz" }, ExitUser, `user "no-such-user-xyz": no such user`},
		{"group", func(s *Spec) { s.Group = "no-such-group-xyz" }, ExitGroup, `group "no-such-group-xyz": no such group`},
		{"supplementary group", func(s *Spec) { s.SupplementaryGroups = []string{"no-such-group-xyz"} }, ExitGroup, `supplementary group "no-such-group-xyz"`},
		{"cgroup", func(s *Spec) { s.CgroupProcs = []string{"/nonexistent/cgroup.procs"} }, ExitCgroup, "cgroup: open /nonexistent/cgroup.procs"},
		{"rlimit", func(s *Spec) {
			s.Rlimits = []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 10, Max: 5}}
		}, ExitLimits, "setrlimit RLIMIT_NOFILE: invalid argument"},
		{"chdir after setuid", func(s *Spec) { s.User = "nobody"; s.Dir = "/root" }, ExitChdir, "chdir /root: permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sh("echo ran")
			tt.mod(s)
			out, ws, _, err := run(t, s)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if pe.Code != tt.code || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error code %d msg %q, want %d containing %q", pe.Code, pe.Msg, tt.code, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "spawn "+s.Path+": ") {
				t.Errorf("error %q does not name the path", err)
			}
			if ws.ExitStatus() != tt.code {
				t.Errorf("child exit status %d, want %d (%s)", ws.ExitStatus(), tt.code, ExitCodeName(tt.code))
			}
			if out != "" {
				t.Errorf("program ran: %q", out)
			}
		})
	}
}

func TestExtraFiles(t *testing.T) {
	r1, w1, _ := os.Pipe()
	r2, w2, _ := os.Pipe()
	defer r1.Close()
	defer r2.Close()
	w1.WriteString("one")
	w1.Close()
	w2.WriteString("two")
	w2.Close()
	out, ws, _, err := run(t, &Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", "cat <&3; cat <&4; ls /proc/self/fd | wc -l"},
		ExtraFiles: []*os.File{r1, r2}})
	if err != nil {
		t.Fatal(err)
	}
	// 0, 1, 2, 3, 4 and the fd ls opens for the directory: the error
	// pipe and nothing else of the trampoline leaked.
	if out != "onetwo6\n" || ws.ExitStatus() != 0 {
		t.Fatalf("output %q status %d", out, ws.ExitStatus())
	}
}

func TestStdinDefaultsToDevNull(t *testing.T) {
	out, _, _, err := run(t, sh(`readlink /proc/self/fd/0`))
	if err != nil {
		t.Fatal(err)
	}
	if out != "/dev/null\n" {
		t.Fatalf("stdin is %q", out)
	}
}

func TestStartReturnsAfterExec(t *testing.T) {
	// When Start returns, the program (not the trampoline) is running.
	ctx := context.Background()
	pid, err := (&Spawner{}).Start(ctx, &Spec{Path: "/bin/sleep", Argv: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	defer waitPID(t, pid)
	defer unix.Kill(pid, unix.SIGKILL)
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(exe, "/sleep") {
		t.Fatalf("pid %d runs %s, want sleep", pid, exe)
	}
}

func TestHelperWithoutTrampoline(t *testing.T) {
	pid, err := (&Spawner{Helper: "/bin/true"}).Start(context.Background(), &Spec{Path: "/bin/true"})
	if pid > 0 {
		waitPID(t, pid)
	}
	if err == nil || !strings.Contains(err.Error(), "MaybeTrampoline") {
		t.Fatalf("err = %v, want a hint about MaybeTrampoline", err)
	}
}

func TestStartTime(t *testing.T) {
	own, err := StartTime(os.Getpid())
	if err != nil || own == 0 {
		t.Fatalf("StartTime(self) = %d, %v", own, err)
	}
	pid, err := (&Spawner{}).Start(context.Background(), &Spec{Path: "/bin/sleep", Argv: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	child, err := StartTime(pid)
	unix.Kill(pid, unix.SIGKILL)
	waitPID(t, pid)
	if err != nil || child < own {
		t.Fatalf("StartTime(child) = %d, %v; own %d", child, err, own)
	}
	if _, err := StartTime(pid); err == nil {
		t.Fatal("StartTime of a reaped pid succeeded")
	}
}

func TestExitCodeName(t *testing.T) {
	for code, want := range map[int]string{0: "SUCCESS", 1: "FAILURE", 200: "CHDIR", 203: "EXEC", 217: "USER", 219: "CGROUP", 227: "NO_NEW_PRIVILEGES", 42: ""} {
		if got := ExitCodeName(code); got != want {
			t.Errorf("ExitCodeName(%d) = %q, want %q", code, got, want)
		}
	}
}

// BenchmarkSpawn compares a start through the trampoline with a plain
// fork/exec of the same program.
func BenchmarkSpawn(b *testing.B) {
	b.Run("trampoline", func(b *testing.B) {
		s := &Spawner{}
		for i := 0; i < b.N; i++ {
			pid, err := s.Start(context.Background(), &Spec{Path: "/bin/true", Setsid: true})
			if err != nil {
				b.Fatal(err)
			}
			waitPID(b, pid)
		}
	})
	b.Run("os.StartProcess", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{Setsid: true}})
			if err != nil {
				b.Fatal(err)
			}
			waitPID(b, p.Pid)
			p.Release()
		}
	})
}

func TestStartCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pid, err := (&Spawner{}).Start(ctx, &Spec{Path: "/bin/true"})
	if pid != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled ctx = %d, %v", pid, err)
	}
}

func hardNofile(t *testing.T) uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	return l.Max
}
