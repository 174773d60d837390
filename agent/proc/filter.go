package proc

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Filter is a seccomp BPF program (see agent/proc/seccomp for a compiler).
type Filter []unix.SockFilter

// install loads the filter for this thread, which is the one that execs,
// so the program and everything it starts run under it. It runs while the
// trampoline is still root with CAP_SYS_ADMIN, so no_new_privs is not
// forced on the program (as with runc); the steps after it (user switch,
// capabilities, chdir, execve) must be allowed by the profile.
func (f Filter) install() error {
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}
