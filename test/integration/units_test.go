//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/test/node"
)

// Requires= pulls the dependency in, After= orders it: b must have finished
// starting (its timestamp written) before a's ExecStart runs.
func TestDependenciesAndOrdering(t *testing.T) {
	dir := t.TempDir()
	n := start(t, map[string]string{
		"a.service": fmt.Sprintf(`
[Unit]
Requires=b.service
After=b.service
Wants=c.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'date +%%%%s%%%%N > %s/a'
`, dir),
		"b.service": fmt.Sprintf(`
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'sleep 0.2; date +%%%%s%%%%N > %s/b'
`, dir),
		"c.service": `
[Service]
ExecStart=/bin/sleep 1000
`,
	})
	n.Must("start", "a.service")
	for _, u := range []string{"a.service", "b.service", "c.service"} {
		if st := strings.TrimSpace(n.Must("is-active", u)); st != "active" {
			t.Errorf("%s is %s, want active", u, st)
		}
	}
	ta, tb := readNanos(t, filepath.Join(dir, "a")), readNanos(t, filepath.Join(dir, "b"))
	if tb >= ta {
		t.Errorf("b finished at %d, after a started at %d: After= not honoured", tb, ta)
	}
	// Stopping b stops a (RequiredBy), but not c (only wanted by a).
	n.Must("stop", "b.service")
	if st := strings.TrimSpace(mustOut(n.Ctl("is-active", "a.service"))); st != "inactive" {
		t.Errorf("a.service is %s after stopping b, want inactive", st)
	}
	if st := strings.TrimSpace(n.Must("is-active", "c.service")); st != "active" {
		t.Errorf("c.service is %s, want active", st)
	}
}

func mustOut(s string, _ error) string { return s }

// python is Debian's interpreter: services get a fixed PATH, not ours.
const python = "/usr/bin/python3"

// pyScript writes a Python helper for a service and returns its path.
func pyScript(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "helper.py")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readNanos(t *testing.T, p string) int64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A crashing service is restarted per Restart=, then put into failed once
// the start limit is hit.
func TestRestartThenStartLimit(t *testing.T) {
	dir := t.TempDir()
	n := start(t, map[string]string{
		"crash.service": fmt.Sprintf(`
[Unit]
StartLimitIntervalSec=60
StartLimitBurst=3
[Service]
ExecStart=/bin/sh -c 'echo run >> %s/runs; exit 3'
Restart=on-failure
RestartSec=50ms
`, dir),
	})
	n.Ctl("start", "crash.service") // may report failure or success depending on timing: Type=simple
	n.Eventually("crash.service failed", func() error {
		if n.Code("is-failed", "crash.service") != 0 {
			return fmt.Errorf("not failed yet")
		}
		return nil
	})
	if r := n.Prop("crash.service", "Result"); r != "start-limit-hit" {
		t.Errorf("Result=%q, want start-limit-hit", r)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "runs"))
	if runs := strings.Count(string(b), "run"); runs != 3 {
		t.Errorf("service ran %d times, want 3 (StartLimitBurst)", runs)
	}
	// reset-failed makes it startable again.
	n.Must("reset-failed", "crash.service")
	if n.Code("is-failed", "crash.service") == 0 {
		t.Errorf("still failed after reset-failed")
	}
}

// Type=notify: start returns only after a real process sent READY=1.
func TestNotifyService(t *testing.T) {
	script := pyScript(t, `
import os, socket, time
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send(b"READY=1\nSTATUS=serving requests")
time.sleep(1000)
`)
	n := start(t, map[string]string{
		"notify.service": `
[Service]
Type=notify
ExecStart=` + python + ` ` + script + `
`,
	})
	n.Must("start", "notify.service")
	if st := n.Prop("notify.service", "ActiveState"); st != "active" {
		t.Fatalf("ActiveState=%q right after start returned, want active", st)
	}
	if s := n.Prop("notify.service", "StatusText"); s != "serving requests" {
		t.Errorf("StatusText=%q, want the STATUS= the service sent", s)
	}
}

// Accept=no: the first connection starts the service, which gets the
// listening socket as fd 3 (LISTEN_FDS=1) and answers.
func TestSocketActivation(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "greet.sock")
	n := start(t, map[string]string{
		"greet.socket": fmt.Sprintf(`
[Socket]
ListenStream=%s
`, sock),
		"greet.service": `
[Service]
ExecStart=` + python + ` ` + pyScript(t, `
import os, socket
assert os.environ["LISTEN_PID"] == str(os.getpid())
assert os.environ["LISTEN_FDS"] == "1"
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.sendall(b"hello from " + os.environ["LISTEN_FDNAMES"].encode() + b"\n")
    c.close()
`) + `
`,
	})
	n.Must("start", "greet.socket")
	if st := strings.TrimSpace(mustOut(n.Ctl("is-active", "greet.service"))); st != "inactive" {
		t.Fatalf("greet.service is %s before any connection, want inactive", st)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "hello from greet\n" {
		t.Errorf("got %q", line)
	}
	if st := strings.TrimSpace(n.Must("is-active", "greet.service")); st != "active" {
		t.Errorf("greet.service is %s after activation", st)
	}
}

// Accept=yes: each connection gets its own instance with the connection on
// stdin/stdout.
func TestSocketAcceptYes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := start(t, map[string]string{
		"echo.socket": fmt.Sprintf(`
[Socket]
ListenStream=%s
Accept=yes
`, addr),
		"echo@.service": `
[Service]
ExecStart=/bin/cat
StandardInput=socket
`,
	})
	n.Must("start", "echo.socket")
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		msg := fmt.Sprintf("ping %d\n", i)
		c.Write([]byte(msg))
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || got != msg {
			t.Fatalf("connection %d: got %q, %v; want %q", i, got, err, msg)
		}
	}
	if v := n.Prop("echo.socket", "NAccepted"); v != "3" {
		t.Errorf("NAccepted=%q, want 3", v)
	}
}

// KillMode=control-group: stop kills every process of the unit, including
// children that left the main process's process group.
func TestKillModeControlGroup(t *testing.T) {
	n := start(t, map[string]string{
		"family.service": `
[Service]
ExecStart=/bin/sh -c 'setsid sleep 1001 & sleep 1002 & exec sleep 1003'
`,
	})
	n.Must("start", "family.service")
	path := "system.slice/family.service"
	var pids []int
	n.Eventually("three processes in the cgroup", func() error {
		pids = procs(n.CgroupFile("pids", path, "cgroup.procs"))
		if len(pids) < 3 {
			return fmt.Errorf("cgroup has %v", pids)
		}
		return nil
	})
	n.Must("stop", "family.service")
	// The unit's cgroup is removed once empty; if it is still there it
	// must hold nothing.
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", n.Cgroup, path, "cgroup.procs")); err == nil {
		if left := procs(string(b)); len(left) > 0 {
			t.Errorf("processes left in the cgroup after stop: %v", left)
		}
	}
	for _, p := range pids {
		if err := syscall.Kill(p, 0); err == nil {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); !strings.Contains(string(st), ") Z") {
				t.Errorf("pid %d still alive after stop", p)
			}
		}
	}
}

func procs(s string) []int {
	var out []int
	for _, f := range strings.Fields(s) {
		if v, err := strconv.Atoi(f); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// Resource directives land in the cgroup files.
func TestCgroupLimits(t *testing.T) {
	n := start(t, map[string]string{
		"limited.service": `
[Service]
ExecStart=/bin/sleep 1000
MemoryMax=64M
CPUQuota=50%
TasksMax=32
`,
	})
	n.Must("start", "limited.service")
	path := "system.slice/limited.service"
	checks := []struct{ ctrl, file, want string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"pids", "pids.max", "32"},
	}
	for _, c := range checks {
		if got := n.CgroupFile(c.ctrl, path, c.file); got != c.want {
			t.Errorf("%s/%s = %q, want %q", c.ctrl, c.file, got, c.want)
		}
	}
	pid := n.Prop("limited.service", "MainPID")
	if !strings.Contains(n.CgroupFile("memory", path, "cgroup.procs"), pid) {
		t.Errorf("main PID %s is not in the unit's memory cgroup", pid)
	}
}

// Output goes to the log store and comes back through corralctl logs.
func TestLogs(t *testing.T) {
	n := start(t, map[string]string{
		"talk.service": `
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo hello stdout; echo hello stderr >&2'
`,
	})
	n.Must("start", "talk.service")
	n.Eventually("both lines logged", func() error {
		out, err := n.Ctl("logs", "-u", "talk.service")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "hello stdout") || !strings.Contains(out, "hello stderr") {
			return fmt.Errorf("logs:\n%s", out)
		}
		return nil
	})
	out := n.Must("logs", "-u", "talk.service", "-n", "1")
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("-n 1 gave several lines:\n%s", out)
	}
}

// A malformed unit is reported with its file and line, and does not stop
// anything else from working.
func TestMalformedUnitIsolated(t *testing.T) {
	n := start(t, map[string]string{
		"bad.service": `
[Service
ExecStart=/bin/true
`,
		"worse.service": `
[Service]
Type=bogus
ExecStart=/bin/true
`,
		"good.service": `
[Service]
ExecStart=/bin/sleep 1000
`,
	})
	n.Must("start", "good.service")
	if st := strings.TrimSpace(n.Must("is-active", "good.service")); st != "active" {
		t.Errorf("good.service is %s", st)
	}
	for unit, state := range map[string]string{"bad.service": "error", "worse.service": "bad-setting"} {
		if ls := n.Prop(unit, "LoadState"); ls != state {
			t.Errorf("%s LoadState=%q, want %q", unit, ls, state)
		}
		out, err := n.Ctl("start", unit)
		if err == nil {
			t.Errorf("start %s succeeded", unit)
		}
		if !strings.Contains(out, unit) {
			t.Errorf("start %s error does not name the unit: %s", unit, out)
		}
		st, _ := n.Ctl("status", unit)
		if !strings.Contains(st, filepath.Join(n.Units, unit)+":") {
			t.Errorf("status %s does not name file:line:\n%s", unit, st)
		}
	}
}

// enable creates the [Install] symlinks, disable removes them, is-enabled
// reports it.
func TestEnableDisable(t *testing.T) {
	n := start(t, map[string]string{
		"web.service": `
[Service]
ExecStart=/bin/sleep 1000
[Install]
WantedBy=multi-user.target
Alias=www.service
`,
	})
	if st := strings.TrimSpace(mustOut(n.Ctl("is-enabled", "web.service"))); st != "disabled" {
		t.Errorf("is-enabled before enable: %q", st)
	}
	n.Must("enable", "--now", "web.service")
	link := filepath.Join(n.Root, "etc/corral/system/multi-user.target.wants/web.service")
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("enable did not create %s: %v", link, err)
	}
	if st := strings.TrimSpace(n.Must("is-enabled", "web.service")); st != "enabled" {
		t.Errorf("is-enabled after enable: %q", st)
	}
	if st := strings.TrimSpace(n.Must("is-active", "www.service")); st != "active" {
		t.Errorf("alias www.service is %q after enable --now", st)
	}
	n.Must("disable", "web.service")
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("disable left %s", link)
	}
}

// The supervisor restarts a killed core, and the API answers again.
func TestCoreRestartedBySupervisor(t *testing.T) {
	n := start(t, map[string]string{
		"long.service": `
[Service]
ExecStart=/bin/sleep 1000
`,
	})
	n.Must("start", "long.service")
	main := n.Prop("long.service", "MainPID")
	agent := agentPID(t, n)
	if agent <= 0 {
		t.Fatal("no corral-agent child of the supervisor")
	}
	syscall.Kill(agent, syscall.SIGKILL)
	n.Eventually("a new core answers", func() error {
		if p := agentPID(t, n); p == agent || p == 0 {
			return fmt.Errorf("core not restarted yet")
		}
		_, err := n.Ctl("list-units")
		return err
	})
	pid, _ := strconv.Atoi(main)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("service main PID %d did not survive the core's crash: %v", pid, err)
	}
}

// agentPID finds the supervisor's corral-agent child (0 if none yet).
func agentPID(t *testing.T, n *node.Node) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(n.Cmd.Process.Pid) {
			continue
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.HasSuffix(exe, "/corral-agent") {
			return pid
		}
	}
	return 0
}
