package reaper

import (
	"context"
	"log/slog"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
		return syscall.Signal(e.Status.Signal())
	}
	return 0
}

// String formats like systemd's status lines.
func (e Exit) String() string { return "" }

// Reaper is the agent's only wait4(-1) loop.
type Reaper struct{ log *slog.Logger }

// New returns a Reaper; call Run to start reaping.
func New(log *slog.Logger) *Reaper { return &Reaper{log: log} }

// Run reaps children on SIGCHLD until ctx is done.
func (r *Reaper) Run(ctx context.Context) {}

// Watch returns a channel that receives pid's exit.
func (r *Reaper) Watch(pid int) <-chan Exit { return make(chan Exit, 1) }

// Unwatch stops watching pid.
func (r *Reaper) Unwatch(pid int) {}

// SetSubreaper makes the calling process a child subreaper.
func SetSubreaper() error { return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }
