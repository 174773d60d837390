package sysinit

import (
	"encoding/binary"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// siginfoPIDOffset is where si_pid sits in siginfo_t: after three int32
// (signo, errno, code), aligned to the pointer size of the union.
const siginfoPIDOffset = (12 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)

// siginfoPID extracts si_pid, which x/sys/unix keeps in an opaque union.
func siginfoPID(info *unix.Siginfo) int {
	b := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	return int(int32(binary.NativeEndian.Uint32(b[siginfoPIDOffset:])))
}

// reapAll reaps every exited child and calls fn for each, until none is
// left waiting. Each child is first peeked at with WNOWAIT so that its
// /proc/PID/stat (still present while it is a zombie) yields the start time
// that identifies it across PID reuse; only then is it reaped.
func reapAll(procfs string, fn func(Record)) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // ECHILD: no children at all
		}
		pid := siginfoPID(&info)
		if pid <= 0 {
			return // children exist, none has exited
		}
		var start uint64
		if s, err := readStat(procfs, pid); err == nil {
			start = s.Start
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || got != pid {
			// Cannot happen while we are the only waiter; fall back to an
			// anonymous wait so that the loop always makes progress.
			got, err = unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || got <= 0 {
				return
			}
			start = 0
		}
		fn(Record{PID: got, StartTime: start, Status: ws, Time: time.Now()})
	}
}
