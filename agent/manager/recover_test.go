package manager

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/service"
	"corral.io/corral/sysinit"
)

// startSleep starts a real process to watch; the test reaps it itself
// (there is no reaper running here).
func startSleep(t *testing.T) (int, uint64) {
	t.Helper()
	c := exec.Command("sleep", "100")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
	})
	st, err := proc.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	return pid, st
}

func writeRecords(t *testing.T, w *os.File, recs ...sysinit.Record) {
	t.Helper()
	var b []byte
	for _, r := range recs {
		b, _ = r.AppendBinary(b)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, ch <-chan reaper.Exit, within time.Duration) (reaper.Exit, bool) {
	t.Helper()
	select {
	case e := <-ch:
		return e, true
	case <-time.After(within):
		return reaper.Exit{}, false
	}
}

// TestExitBookWatchPID: an adopted process's exit is seen through its
// pidfd and carries the status of the supervisor's record with the same
// PID and start time; a record of an earlier process with the same PID is
// not taken for it.
func TestExitBookWatchPID(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := newExitBook(r)
	defer b.close()

	pid, start := startSleep(t)
	ch, cancel := b.WatchPID(pid, start)
	defer cancel()
	writeRecords(t, w, sysinit.Record{PID: pid, StartTime: start - 1, Status: 9 << 8})
	if e, ok := recv(t, ch, 100*time.Millisecond); ok {
		t.Fatalf("exit %v delivered while the process runs", e)
	}
	unix.Kill(pid, unix.SIGKILL)
	if e, ok := recv(t, ch, 200*time.Millisecond); ok {
		t.Fatalf("exit %v delivered before the supervisor's record", e)
	}
	writeRecords(t, w, sysinit.Record{PID: pid, StartTime: start, Status: 3 << 8, Time: time.Now()})
	e, ok := recv(t, ch, 5*time.Second)
	if !ok {
		t.Fatal("no exit delivered")
	}
	if e.PID != pid || e.Code() != 3 {
		t.Errorf("exit %+v (%s), want pid %d status 3", e, e, pid)
	}
}

// TestExitBookGone: a PID whose start time does not match is gone at once;
// without a record (the stream ended) its status is unknown, and a
// cancelled watch delivers nothing.
func TestExitBookGone(t *testing.T) {
	pid, start := startSleep(t)
	tests := []struct {
		name   string
		stream bool
		rec    *sysinit.Record
		want   int // exit code, or -2 for StatusUnknown
	}{
		{name: "record arrives", stream: true, rec: &sysinit.Record{PID: pid, StartTime: start + 1, Status: 7 << 8}, want: 7},
		{name: "no stream", stream: false, want: -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b *exitBook
			var w *os.File
			if tt.stream {
				var r *os.File
				var err error
				if r, w, err = os.Pipe(); err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				b = newExitBook(r)
			} else {
				b = newExitBook(nil)
			}
			defer b.close()
			// start+1: the live process with this PID is another one.
			ch, cancel := b.WatchPID(pid, start+1)
			defer cancel()
			if tt.rec != nil {
				writeRecords(t, w, *tt.rec)
			}
			e, ok := recv(t, ch, 5*time.Second)
			if !ok {
				t.Fatal("no exit delivered")
			}
			if tt.want == -2 {
				if e.Status != service.StatusUnknown {
					t.Errorf("status %s, want unknown", e)
				}
			} else if e.Code() != tt.want {
				t.Errorf("exit %s, want status %d", e, tt.want)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		b := newExitBook(nil)
		ch, cancel := b.WatchPID(pid, start)
		cancel()
		if e, ok := recv(t, ch, 100*time.Millisecond); ok {
			t.Errorf("cancelled watch delivered %v", e)
		}
	})
}
