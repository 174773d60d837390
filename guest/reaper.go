package guest

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper is the guest's only wait4(-1) loop: as PID 1 the agent inherits
// every orphan, and a per-child Wait would race with it. A child is
// registered under the same lock the loop holds while it reaps, so an exit
// cannot be reaped before its watcher exists.
type reaper struct {
	mu    sync.Mutex
	watch map[int]chan syscall.WaitStatus
}

func newReaper() *reaper {
	r := &reaper{watch: map[int]chan syscall.WaitStatus{}}
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		for range ch {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if c := r.watch[pid]; c != nil {
			c <- ws
			delete(r.watch, pid)
		}
	}
}

// start forks and execs argv with attr and returns the PID and a channel
// that receives its exit status.
func (r *reaper) start(argv0 string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(argv0, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	c := make(chan syscall.WaitStatus, 1)
	r.watch[pid] = c
	return pid, c, nil
}

// exitStatus turns a wait status into the shell's convention.
func exitStatus(ws syscall.WaitStatus) (code, sig int) {
	if ws.Signaled() {
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return ws.ExitStatus(), 0
}
