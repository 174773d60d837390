package seccomp

import "golang.org/x/sys/unix"

// RuntimeDefault is the profile for a RuntimeDefault container. A native
// container runs the host's programs, so instead of containerd's allow-list
// (written for images, and a risk of breaking a host binary that uses a
// newer call) it allows everything except what containerd's default
// profile keeps from a container: kernel keyrings, module and kexec
// loading, clock, swap, reboot, accounting, namespace and mount calls,
// raw I/O ports, obsolete calls.
// As in containerd, a call guarded by a capability the container was
// given stays allowed (e.g. mount with SYS_ADMIN).
func RuntimeDefault() *Profile {
	deny := func(cap string, names ...string) Rule {
		r := Rule{Names: names, Action: "SCMP_ACT_ERRNO"}
		if cap != "" {
			r.Excludes.Caps = []string{cap}
		}
		return r
	}
	enosys := uint32(unix.ENOSYS)
	return &Profile{
		DefaultAction: "SCMP_ACT_ALLOW",
		Syscalls: []Rule{
			deny("", "add_key", "keyctl", "request_key", "kexec_load", "kexec_file_load",
				"create_module", "get_kernel_syms", "query_module", "nfsservctl", "uselib", "ustat",
				"sysfs", "_sysctl", "vm86", "vm86old", "lookup_dcookie", "userfaultfd"),
			deny("SYS_ADMIN", "bpf", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
				"mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "pivot_root",
				"quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "swapon",
				"swapoff", "umount", "umount2", "unshare", "name_to_handle_at"),
			// clone3 cannot be filtered on its flags (they are behind a
			// pointer): ENOSYS makes libc fall back to clone.
			{Names: []string{"clone3"}, Action: "SCMP_ACT_ERRNO", ErrnoRet: &enosys, Excludes: Filter{Caps: []string{"SYS_ADMIN"}}},
			deny("SYS_BOOT", "reboot"),
			deny("SYS_MODULE", "init_module", "finit_module", "delete_module"),
			deny("SYS_PACCT", "acct"),
			// ptrace and process_vm_* are allowed, as in containerd on
			// kernels since 4.8.
			deny("SYS_PTRACE", "kcmp", "pidfd_getfd", "process_madvise"),
			deny("SYS_RAWIO", "iopl", "ioperm"),
			deny("SYS_TIME", "settimeofday", "stime", "clock_settime"),
			deny("SYS_TTY_CONFIG", "vhangup"),
			deny("SYS_NICE", "get_mempolicy", "set_mempolicy", "mbind", "move_pages"),
			deny("SYSLOG", "syslog"),
			deny("DAC_READ_SEARCH", "open_by_handle_at"),
		},
	}
}
