package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/proc"
)

// How many unclaimed exits are kept, and for how long. A watcher that comes
// later than this is treated as a caller bug, not as a reason to grow without
// bound.
const (
	keepMax = 4096
	keepFor = time.Minute
)

// Exit is one reaped child: its PID, raw wait status and when it was reaped.
type Exit struct {
	PID    int
	Status unix.WaitStatus
	Time   time.Time
}

// Code is the exit code, or -1 if the process was killed by a signal.
func (e Exit) Code() int {
	if e.Status.Exited() {
		return e.Status.ExitStatus()
	}
	return -1
}

// Signal is the signal that killed the process, or 0 if it exited normally.
func (e Exit) Signal() syscall.Signal {
	if e.Status.Signaled() {
		return e.Status.Signal()
	}
	return 0
}

// String formats the exit the way systemd prints it in status output, so
// that users read the same words they know: "code=exited, status=1/FAILURE",
// "code=killed, signal=TERM", "code=dumped, signal=SEGV".
func (e Exit) String() string {
	switch {
	case e.Status.Exited():
		c := e.Status.ExitStatus()
		s := "code=exited, status=" + strconv.Itoa(c)
		if n := proc.ExitCodeName(c); n != "" {
			s += "/" + n
		}
		return s
	case e.Status.Signaled():
		code := "killed"
		if e.Status.CoreDump() {
			code = "dumped"
		}
		return "code=" + code + ", signal=" + SignalName(e.Status.Signal())
	}
	return fmt.Sprintf("code=unknown, status=%#x", uint32(e.Status))
}

// SignalName names a signal without the SIG prefix, as systemd does ("TERM").
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return strings.TrimPrefix(n, "SIG")
	}
	return strconv.Itoa(int(sig))
}

// Reaper reaps every child of the process and hands each exit to whoever
// watches that PID.
type Reaper struct {
	log *slog.Logger

	mu       sync.Mutex
	watchers map[int][]chan Exit
	pending  map[int]Exit // reaped before anybody watched
	order    []int        // pending PIDs, oldest first (may hold stale entries)
	now      func() time.Time
}

// New returns a Reaper; nothing is reaped until Run is called.
func New(log *slog.Logger) *Reaper {
	if log == nil {
		log = slog.Default()
	}
	return &Reaper{
		log:      log,
		watchers: map[int][]chan Exit{},
		pending:  map[int]Exit{},
		now:      time.Now,
	}
}

// Run reaps children whenever SIGCHLD arrives, until ctx is done. Signals
// coalesce, so every wake-up reaps until no child is left to reap. It also
// reaps once at start, for children that exited before Run was called.
func (r *Reaper) Run(ctx context.Context) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGCHLD)
	defer signal.Stop(sigc)
	// A slow tick is a safety net only: a SIGCHLD lost to a signal.Stop of
	// someone else's Notify must not leave a zombie forever.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		r.reapAll()
		select {
		case <-ctx.Done():
			return
		case <-sigc:
		case <-tick.C:
		}
	}
}

func (r *Reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if !errors.Is(err, unix.ECHILD) {
				r.log.Error("wait4 failed", "err", err)
			}
			return
		}
		if pid <= 0 {
			return
		}
		r.deliver(Exit{PID: pid, Status: ws, Time: r.now()})
	}
}

func (r *Reaper) deliver(e Exit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.watchers[e.PID]
	if len(ws) == 0 {
		r.log.Debug("reaped unwatched process", "pid", e.PID, "status", e.String())
		r.pending[e.PID] = e
		r.order = append(r.order, e.PID)
		r.pruneLocked()
		return
	}
	delete(r.watchers, e.PID)
	for _, c := range ws {
		c <- e // buffered(1), and each channel gets exactly one exit
	}
}

// pruneLocked drops pending exits that are too old or too many.
func (r *Reaper) pruneLocked() {
	cut := r.now().Add(-keepFor)
	i := 0
	for ; i < len(r.order); i++ {
		pid := r.order[i]
		e, ok := r.pending[pid]
		if !ok {
			continue // claimed or replaced: stale entry
		}
		if len(r.pending) <= keepMax && !e.Time.Before(cut) {
			break
		}
		delete(r.pending, pid)
	}
	r.order = r.order[i:]
	// Compact so that stale entries cannot grow the slice without bound.
	if len(r.order) > 2*keepMax {
		o := r.order[:0]
		seen := map[int]bool{}
		for _, pid := range r.order {
			if _, ok := r.pending[pid]; ok && !seen[pid] {
				seen[pid] = true
				o = append(o, pid)
			}
		}
		r.order = o
	}
}

// Watch returns a channel (buffered, capacity 1) that receives pid's exit
// exactly once. If pid was already reaped (within the last minute, and among
// the last 4096 unclaimed exits), the exit is delivered at once. Several
// watchers of one PID all receive it.
func (r *Reaper) Watch(pid int) <-chan Exit {
	c := make(chan Exit, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.pending[pid]; ok && !e.Time.Before(r.now().Add(-keepFor)) {
		delete(r.pending, pid)
		c <- e
		return c
	}
	r.watchers[pid] = append(r.watchers[pid], c)
	return c
}

// Unwatch forgets every watcher of pid and any kept exit of it; channels
// already returned by Watch will not receive anything more.
func (r *Reaper) Unwatch(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.watchers, pid)
	delete(r.pending, pid)
}

// SetSubreaper makes the calling process a child subreaper
// (PR_SET_CHILD_SUBREAPER): orphaned descendants, such as the real daemon
// of a Type=forking service after its parent exits, re-parent to us instead
// of to PID 1, so that we can reap and supervise them.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}
