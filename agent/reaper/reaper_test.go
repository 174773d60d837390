package reaper

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExitString(t *testing.T) {
	tests := []struct {
		status unix.WaitStatus
		want   string
		code   int
		sig    syscall.Signal
	}{
		{0, "code=exited, status=0/SUCCESS", 0, 0},
		{1 << 8, "code=exited, status=1/FAILURE", 1, 0},
		{203 << 8, "code=exited, status=203/EXEC", 203, 0},
		{42 << 8, "code=exited, status=42", 42, 0},
		{unix.WaitStatus(syscall.SIGTERM), "code=killed, signal=TERM", -1, syscall.SIGTERM},
		{unix.WaitStatus(syscall.SIGKILL), "code=killed, signal=KILL", -1, syscall.SIGKILL},
		{unix.WaitStatus(syscall.SIGSEGV) | 0x80, "code=dumped, signal=SEGV", -1, syscall.SIGSEGV},
	}
	for _, tt := range tests {
		e := Exit{PID: 1, Status: tt.status}
		if got := e.String(); got != tt.want {
			t.Errorf("String(%#x) = %q, want %q", uint32(tt.status), got, tt.want)
		}
		if got := e.Code(); got != tt.code {
			t.Errorf("Code(%#x) = %d, want %d", uint32(tt.status), got, tt.code)
		}
		if got := e.Signal(); got != tt.sig {
			t.Errorf("Signal(%#x) = %v, want %v", uint32(tt.status), got, tt.sig)
		}
	}
}

// start runs a reaper until the test ends, and waits for its loop to stop so
// that no wait4(-1) outlives the test.
func start(t *testing.T) *Reaper {
	t.Helper()
	r := New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

// spawn starts argv without anybody waiting for it but the reaper.
func spawn(t *testing.T, stdout *os.File, argv ...string) int {
	t.Helper()
	out := os.Stderr.Fd()
	if stdout != nil {
		out = stdout.Fd()
	}
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   []string{"PATH=/usr/bin:/bin"},
		Files: []uintptr{os.Stdin.Fd(), out, os.Stderr.Fd()},
	})
	if err != nil {
		t.Fatalf("fork/exec %v: %v", argv, err)
	}
	return pid
}

func await(t *testing.T, c <-chan Exit) Exit {
	t.Helper()
	select {
	case e := <-c:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no exit delivered within 30s")
		return Exit{}
	}
}

func TestWatchedChildExit(t *testing.T) {
	r := start(t)
	pid := spawn(t, nil, "/bin/sh", "-c", "exit 3")
	e := await(t, r.Watch(pid))
	if e.PID != pid || e.Code() != 3 || e.String() != "code=exited, status=3/NOTIMPLEMENTED" {
		t.Fatalf("exit = %+v (%s), want pid %d code 3", e, e, pid)
	}
	if e.Time.IsZero() {
		t.Error("exit has no time")
	}
}

func TestKilledChild(t *testing.T) {
	r := start(t)
	pid := spawn(t, nil, "/bin/sleep", "100")
	c := r.Watch(pid)
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e := await(t, c)
	if e.Signal() != syscall.SIGTERM || e.Code() != -1 || e.String() != "code=killed, signal=TERM" {
		t.Fatalf("exit = %s, want killed by TERM", e)
	}
}

func TestExitBeforeWatchIsKept(t *testing.T) {
	r := start(t)
	pid := spawn(t, nil, "/bin/sh", "-c", "exit 5")
	// Wait until the reaper has reaped it: /proc/PID disappears only then.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child was never reaped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case e := <-r.Watch(pid):
		if e.Code() != 5 {
			t.Fatalf("kept exit = %s, want status 5", e)
		}
	default:
		t.Fatal("exit reaped before Watch was not delivered at once")
	}
	// It is delivered once only.
	select {
	case e := <-r.Watch(pid):
		t.Fatalf("kept exit delivered twice: %s", e)
	default:
	}
	r.Unwatch(pid)
}

func TestManyChildren(t *testing.T) {
	r := start(t)
	var chans []<-chan Exit
	var pids []int
	for i := 0; i < 20; i++ {
		pid := spawn(t, nil, "/bin/sh", "-c", "exit "+strconv.Itoa(i))
		pids = append(pids, pid)
		chans = append(chans, r.Watch(pid))
	}
	for i, c := range chans {
		if e := await(t, c); e.Code() != i || e.PID != pids[i] {
			t.Errorf("child %d: %s (pid %d), want status %d pid %d", i, e, e.PID, i, pids[i])
		}
	}
}

// TestSubreaperReapsGrandchild makes the test process a subreaper (it is
// the only process the test tree has) and checks that a daemon that
// double-forks away from its parent is reaped by us, with its real status.
func TestSubreaperReapsGrandchild(t *testing.T) {
	if err := SetSubreaper(); err != nil {
		t.Fatal(err)
	}
	r := start(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// The subshell outlives sh; it is re-parented to this process.
	pid := spawn(t, pw, "/bin/sh", "-c", `(sleep 0.3; exit 7) & echo $!`)
	pw.Close()
	parent := await(t, r.Watch(pid))
	if parent.Code() != 0 {
		t.Fatalf("parent exit = %s", parent)
	}
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	gpid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("grandchild pid %q: %v", line, err)
	}
	e := await(t, r.Watch(gpid))
	if e.Code() != 7 {
		t.Fatalf("grandchild exit = %s, want status 7", e)
	}
}

func TestKeptExitsAreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New(nil)
	r.now = func() time.Time { return now }
	for pid := 1; pid <= keepMax+10; pid++ {
		r.deliver(Exit{PID: pid, Time: now})
	}
	if len(r.pending) != keepMax {
		t.Fatalf("kept %d exits, want %d", len(r.pending), keepMax)
	}
	select {
	case <-r.Watch(1):
		t.Fatal("oldest exit beyond the bound was still kept")
	default:
	}
	select {
	case <-r.Watch(keepMax + 10):
	default:
		t.Fatal("newest exit was not kept")
	}
	now = now.Add(keepFor + time.Second)
	select {
	case <-r.Watch(keepMax + 5):
		t.Fatal("exit older than the keep time was delivered")
	default:
	}
	r.deliver(Exit{PID: 99999, Time: now})
	if len(r.pending) != 1 {
		t.Fatalf("after expiry %d exits kept, want 1", len(r.pending))
	}
}

func TestUnwatch(t *testing.T) {
	r := New(nil)
	c := r.Watch(42)
	r.Unwatch(42)
	r.deliver(Exit{PID: 42, Time: time.Now()})
	select {
	case <-c:
		t.Fatal("unwatched channel received an exit")
	default:
	}
}

func TestEveryWatcherGetsTheExit(t *testing.T) {
	r := New(nil)
	a, b := r.Watch(7), r.Watch(7)
	r.deliver(Exit{PID: 7, Status: 2 << 8, Time: time.Now()})
	for _, c := range []<-chan Exit{a, b} {
		select {
		case e := <-c:
			if e.Code() != 2 {
				t.Fatalf("exit %s", e)
			}
		default:
			t.Fatal("a watcher got nothing")
		}
	}
	if len(r.pending) != 0 || len(r.watchers) != 0 {
		t.Fatalf("state left behind: %d pending, %d watchers", len(r.pending), len(r.watchers))
	}
}
