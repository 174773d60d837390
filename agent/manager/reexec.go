package manager

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"corral.io/corral/agent/notify"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/service"
)

// Live re-exec of the core (issue 7 item 3, docs/RECOVERY.md). main stops
// the API and CRI servers, calls Quiesce, collects the sockets to hand on
// (PassNotify for the notify socket) and execs. The new image recovers
// exactly as after a crash (recover.go), with one difference: the services'
// processes are still its own children, so their exits come from its
// reaper, not from the supervisor's exit records (watcher).

// listenNotify binds the notify socket, or takes over the one the previous
// image of this core passed on.
func listenNotify(cfg Config) (*notify.Listener, error) {
	if cfg.Notify != nil {
		return notify.FromFile(cfg.Notify, cfg.notifyPath())
	}
	return notify.Listen(cfg.notifyPath())
}

// PassNotify returns a duplicate of the notify socket's fd that survives
// exec, for the next image's Config.Notify.
func (m *Manager) PassNotify() (int, error) { return m.notify.PassOn() }

// Quiesce waits until the job engine is idle, or ctx is done; it returns
// the number of jobs still queued or running. Callers stop whatever submits
// jobs from outside (the API and CRI servers) first. Unit state is written
// to the DB before every change is acknowledged, so once no job runs the DB
// describes everything the next image must re-adopt.
func (m *Manager) Quiesce(ctx context.Context) int {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		n := len(m.engine.Jobs())
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// watcher is the PIDWatcher recovery hands to adopted services.
func (m *Manager) watcher() service.PIDWatcher { return childWatcher{r: m.reaper, book: m.book} }

// childWatcher watches an adopted process with the reaper when it is our own
// child (after daemon-reexec nearly all are: exec keeps the children, and a
// child's exit is reaped by us, never recorded by the supervisor), and with
// a pidfd plus the supervisor's exit records otherwise (after a crash they
// re-parented to the supervisor).
type childWatcher struct {
	r    *reaper.Reaper
	book *exitBook
}

func (w childWatcher) WatchPID(pid int, start uint64) (<-chan reaper.Exit, func()) {
	ppid, st, err := parentOf(pid)
	if err == nil && ppid == os.Getpid() && (start == 0 || st == start) {
		// Our child, alive or a zombie: the reaper delivers its exit,
		// also if it reaps it before this Watch (kept exits).
		return w.r.Watch(pid), func() { w.r.Unwatch(pid) }
	}
	if err != nil {
		// Gone: our reaper may have reaped it already (an exit during
		// the exec, reaped by the new image before recovery got here).
		if e, ok := w.reaped(pid); ok {
			ch := make(chan reaper.Exit, 1)
			ch <- e
			return ch, func() {}
		}
	}
	return w.book.WatchPID(pid, start)
}

// reaped returns an exit of pid the reaper holds unclaimed, without
// leaving a watch behind.
func (w childWatcher) reaped(pid int) (reaper.Exit, bool) {
	ch := w.r.Watch(pid)
	select {
	case e := <-ch:
		return e, true
	default:
	}
	w.r.Unwatch(pid)
	select {
	case e := <-ch:
		return e, true
	default:
		return reaper.Exit{}, false
	}
}

// parentOf reads pid's parent and start time (fields 4 and 22 of
// /proc/PID/stat).
func parentOf(pid int) (int, uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return ppid, st, nil
}
