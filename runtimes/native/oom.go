package native

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// watchOOM arms a memory.oom_control notification (cgroup v1) on the
// container's own memory cgroup and calls killed when the kernel reports
// an OOM in it. v1 counts OOM kills per cgroup without passing them up to
// the pod, and the service removes the container's cgroup before its exit
// reaches us, so the event is what tells an OOM kill apart from any other
// SIGKILL. The kernel also signals the eventfd when the cgroup is removed:
// a wake-up after which the cgroup is gone ends the watch.
func watchOOM(memDir string, killed func()) error {
	ctl, err := os.Open(filepath.Join(memDir, "memory.oom_control"))
	if err != nil {
		return fmt.Errorf("oom watch: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		ctl.Close()
		return fmt.Errorf("oom watch: eventfd: %w", err)
	}
	ev := os.NewFile(uintptr(efd), "oom eventfd "+memDir)
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd()))
	if err := os.WriteFile(filepath.Join(memDir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		ctl.Close()
		ev.Close()
		return fmt.Errorf("oom watch: %w", err)
	}
	go func() {
		defer ctl.Close()
		defer ev.Close()
		var buf [8]byte
		for {
			if _, err := ev.Read(buf[:]); err != nil {
				return
			}
			if _, err := os.Stat(filepath.Join(memDir, "memory.oom_control")); errors.Is(err, os.ErrNotExist) {
				return // the cgroup was removed
			}
			killed()
		}
	}()
	return nil
}
