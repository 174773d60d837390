package main

import (
	"bytes"
	"errors"
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

// These tests boot the real corral binary as PID 1 of a new PID, mount,
// UTS and network namespace, chrooted into a tmpfs holding only corral,
// the multi-call links and testdata/pid1agent as corral-agent. What they
// check (early mounts, reaping orphans, restarting a killed core, re-exec,
// the shutdown sequence) only exists for a real PID 1. reboot(2) in a child
// PID namespace ends its init with SIGINT (power off, halt) or SIGHUP
// (restart) instead of touching the machine, which is how the tests see
// which action the shutdown ended in.

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type nsInit struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// bootPID1 prepares the root and starts corral as PID 1 in new namespaces.
func bootPID1(t *testing.T, cmdline string) *nsInit {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, d := range []string{"usr/sbin", "etc", "proc", "sys", "dev", "run", "state", "cmd"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range [][2]string{{"usr/sbin/corral", "."}, {"usr/sbin/corral-agent", "./testdata/pid1agent"}} {
		c := exec.Command("go", "build", "-o", filepath.Join(src, b[0]), b[1])
		c.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	for _, n := range []string{"poweroff", "reboot", "halt"} {
		if err := os.Symlink("corral", filepath.Join(src, "usr/sbin", n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("# test\npid1-test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// The root is a tmpfs mounted inside the new mount namespace, with
	// propagation private: the shutdown's unmounts and the read-only remount
	// of / reach nothing of the host.
	script := `set -e; mount --make-rprivate /; mount -t tmpfs -o mode=755 corral-pid1-test "$R"; cp -a "$SRC"/. "$R"/; exec chroot "$R" /usr/sbin/corral`
	n := &nsInit{t: t, out: &lockedBuffer{}, done: make(chan struct{})}
	n.cmd = exec.Command("/bin/sh", "-c", script)
	n.cmd.Env = []string{"R=" + root, "SRC=" + src, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CORRAL_CONSOLE=-", "CORRAL_CMDLINE=" + cmdline}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	n.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		select {
		case <-n.done:
		default:
			// SIGKILL to a namespace's init kills the whole namespace.
			n.cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("console:\n%s", n.out.String())
		}
	})
	n.waitUntil("the core is ready", func() bool { return n.exists("state/ready") })
	return n
}

// path is a file in the namespace's root, seen from the host.
func (n *nsInit) path(p string) string {
	return "/proc/" + strconv.Itoa(n.cmd.Process.Pid) + "/root/" + p
}

func (n *nsInit) exists(p string) bool {
	_, err := os.Stat(n.path(p))
	return err == nil
}

func (n *nsInit) read(p string) string {
	b, _ := os.ReadFile(n.path(p))
	return string(b)
}

func (n *nsInit) touch(p string) {
	n.t.Helper()
	if err := os.WriteFile(n.path(p), nil, 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// waitUntil polls cond; the deadline only prevents hangs.
func (n *nsInit) waitUntil(what string, cond func() bool) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-n.done:
			n.t.Fatalf("PID 1 exited (%v) while waiting until %s", n.err, what)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *nsInit) starts() []string { return strings.Fields(n.read("state/starts")) }

// children returns the host PIDs of init's children and their states.
func (n *nsInit) children() map[int]byte {
	out := map[int]byte{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(n.cmd.Process.Pid) {
			out[pid] = f[0][0]
		}
	}
	return out
}

// agentHostPID is the host PID of the running core.
func (n *nsInit) agentHostPID() int {
	for pid := range n.children() {
		if c, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.HasPrefix(string(c), "/usr/sbin/corral-agent\x00") {
			return pid
		}
	}
	return 0
}

// waitExit waits for PID 1 to end and returns the signal that ended it.
func (n *nsInit) waitExit() syscall.Signal {
	n.t.Helper()
	select {
	case <-n.done:
	case <-time.After(60 * time.Second):
		n.t.Fatal("PID 1 did not end")
	}
	var ee *exec.ExitError
	if !errors.As(n.err, &ee) {
		n.t.Fatalf("PID 1 ended with %v, want killed by a signal", n.err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() {
		n.t.Fatalf("PID 1 exited with status %d, want killed by a signal (reboot(2) in a PID namespace)", ws.ExitStatus())
	}
	return ws.Signal()
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func TestPID1BootReapRestartReexecPoweroff(t *testing.T) {
	n := bootPID1(t, "quiet corral.unit=test.target corral.debug")

	// The core got the PID-1 flags and the command line's choices.
	args := strings.Join(strings.Fields(n.read("state/args")), " ")
	for _, want := range []string{"/usr/sbin/corral-agent --root /", "--default-target test.target", "--log-level debug", "--helper /usr/sbin/corral", "--system-units yes"} {
		if !strings.Contains(args, want) {
			t.Errorf("core args %q lack %q", args, want)
		}
	}
	// Early boot: mounts, hostname, loopback.
	mounts := n.read("state/mounts")
	for _, want := range []string{"proc /proc proc", "sysfs /sys sysfs", "devtmpfs /dev devtmpfs", "devpts /dev/pts devpts", "tmpfs /dev/shm tmpfs", "tmpfs /run tmpfs", "cgroup2 /sys/fs/cgroup cgroup2"} {
		if !strings.Contains(mounts, want) {
			t.Errorf("mount %q missing from:\n%s", want, mounts)
		}
	}
	if h := n.read("state/hostname"); h != "pid1-test" {
		t.Errorf("hostname %q, want pid1-test", h)
	}
	if lo := n.read("state/lo"); !strings.Contains(lo, "up") {
		t.Errorf("lo flags %q, want up", lo)
	}
	// Measured once PID 1 trimmed itself after boot (sysinit.Trim; it
	// logs just before, so that the log line's code is not mapped again
	// after): the number docs/BENCHMARKS.md records.
	n.waitUntil("PID 1 trimmed its memory", func() bool { return strings.Contains(n.out.String(), `msg="memory trimmed" after=idle`) })
	time.Sleep(100 * time.Millisecond) // let the trim finish; not a timing assertion
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(n.cmd.Process.Pid) + "/status")
	var mem []string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Rss") || strings.HasPrefix(l, "Threads") {
			mem = append(mem, strings.Join(strings.Fields(l), " "))
		}
	}
	t.Logf("idle RSS of PID-1 sysinit: %d KiB (%s)", rssKiB(n.cmd.Process.Pid), strings.Join(mem, ", "))
	if os.Getenv("PID1_SMAPS") != "" {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(n.cmd.Process.Pid) + "/smaps")
		var m string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
				m = l
			} else if len(f) > 1 && f[0] == "Rss:" && f[1] != "0" {
				t.Logf("%s Rss %s", m, f[1])
			}
		}
	}

	// Every orphan is reaped: afterwards init's only child is the core (the
	// service is the core's child), and re-parented zombies would stay
	// forever otherwise.
	n.touch("cmd/orphans")
	n.waitUntil("orphans were made", func() bool { return n.exists("state/orphans-done") })
	n.waitUntil("init has only the core as its child", func() bool {
		c := n.children()
		for _, st := range c {
			if st == 'Z' {
				return false
			}
		}
		return len(c) == 1
	})
	if !strings.Contains(n.out.String(), "reaped orphan") {
		t.Error("no orphan reaping was logged")
	}

	// kill -9 the core: a new one starts, the service keeps running.
	svc := strings.TrimSpace(n.read("state/service.pid"))
	alive := func() bool {
		b, err := os.ReadFile(n.path("proc/" + svc + "/stat"))
		return err == nil && !strings.Contains(string(b), ") Z ")
	}
	if svc == "" || !alive() {
		t.Fatalf("service %q not running", svc)
	}
	syscall.Kill(n.agentHostPID(), syscall.SIGKILL)
	n.waitUntil("the core was restarted", func() bool { return len(n.starts()) == 2 })
	n.waitUntil("the new core is up", func() bool { return n.agentHostPID() != 0 })
	if !alive() {
		t.Errorf("service %s died with the core", svc)
	}

	// SIGTERM re-execs PID 1, which adopts the running core.
	core := n.agentHostPID()
	syscall.Kill(n.cmd.Process.Pid, syscall.SIGTERM)
	n.waitUntil("the new sysinit adopted the core", func() bool { return strings.Contains(n.out.String(), "adopted core") })
	if got := n.agentHostPID(); got != core || len(n.starts()) != 2 {
		t.Errorf("after re-exec: core %d (was %d), %d starts (want 2)", got, core, len(n.starts()))
	}
	syscall.Kill(core, syscall.SIGKILL)
	n.waitUntil("the adopted core was restarted when killed", func() bool { return len(n.starts()) == 3 })
	n.waitUntil("the new core is up", func() bool { return n.agentHostPID() != 0 && n.agentHostPID() != core })
	time.Sleep(100 * time.Millisecond) // let the core install its SIGTERM handler

	// SIGPWR: orderly shutdown ending in reboot(2) RB_POWER_OFF.
	syscall.Kill(n.cmd.Process.Pid, syscall.SIGPWR)
	if sig := n.waitExit(); sig != syscall.SIGINT {
		t.Errorf("PID 1 ended by %v, want SIGINT (power off in a PID namespace)", sig)
	}
	out := n.out.String()
	for _, want := range []string{"stopping core", "terminating remaining processes", "remounted / read-only", "corral: poweroff"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	if !strings.Contains(out, "core exited") {
		t.Error("the core did not exit on shutdown")
	}
}

func TestPID1RebootByMultiCallName(t *testing.T) {
	n := bootPID1(t, "")
	if args := n.read("state/args"); strings.Contains(args, "--default-target") || strings.Contains(args, "--log-level") {
		t.Errorf("no command line, but core args are %q", args)
	}
	n.touch("cmd/reboot") // the core runs /usr/sbin/reboot → SIGINT to PID 1
	if sig := n.waitExit(); sig != syscall.SIGHUP {
		t.Errorf("PID 1 ended by %v, want SIGHUP (restart in a PID namespace)", sig)
	}
	if out := n.out.String(); !strings.Contains(out, "corral: reboot") || !strings.Contains(out, "signal=SIGINT") {
		t.Errorf("console lacks the reboot sequence:\n%s", out)
	}
}
