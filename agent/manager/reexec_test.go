package manager

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/service"
)

// TestChildWatcher: after daemon-reexec the adopted processes are our own
// children. Their exit status must come from our reaper (the supervisor
// never sees them), whether the exit happens after the watch starts or was
// reaped before it; a record-less stranger still goes to the exit book.
func TestChildWatcher(t *testing.T) {
	r := reaper.New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	w := childWatcher{r: r, book: newExitBook(nil)}

	start := func(code string) (int, uint64) {
		c := exec.Command("/bin/sh", "-c", code)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		st, err := proc.StartTime(c.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		return c.Process.Pid, st
	}
	wait := func(ch <-chan reaper.Exit) reaper.Exit {
		t.Helper()
		select {
		case e := <-ch:
			return e
		case <-time.After(30 * time.Second):
			t.Fatal("no exit within 30s")
			return reaper.Exit{}
		}
	}

	// Alive when watched.
	pid, st := start("sleep 0.2; exit 5")
	ch, stop := w.WatchPID(pid, st)
	if e := wait(ch); e.Code() != 5 {
		t.Errorf("live child: %v, want status 5", e)
	}
	stop()

	// Exited and reaped before the watch (during the exec).
	pid, st = start("sleep 0.05; exit 6")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, err := parentOf(pid); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child not reaped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ch, stop = w.WatchPID(pid, st)
	if e := wait(ch); e.Code() != 6 {
		t.Errorf("reaped child: %v, want status 6", e)
	}
	stop()

	// A PID that is neither our child nor reaped by us: no stream, so the
	// exit book answers "unknown" at once.
	ch, stop = w.WatchPID(1<<22-3, 1)
	if e := wait(ch); e.Status != service.StatusUnknown {
		t.Errorf("stranger: %v", e)
	}
	stop()
}
