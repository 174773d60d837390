package native

import (
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/proc"
)

// capNames are the kernel's capabilities by their CRI names (kubelet sends
// them without the CAP_ prefix, crictl and critest sometimes with it).
var capNames = map[string]int{
	"CHOWN": unix.CAP_CHOWN, "DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE, "DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH,
	"FOWNER": unix.CAP_FOWNER, "FSETID": unix.CAP_FSETID, "KILL": unix.CAP_KILL, "SETGID": unix.CAP_SETGID,
	"SETUID": unix.CAP_SETUID, "SETPCAP": unix.CAP_SETPCAP, "LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE,
	"NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "NET_BROADCAST": unix.CAP_NET_BROADCAST,
	"NET_ADMIN": unix.CAP_NET_ADMIN, "NET_RAW": unix.CAP_NET_RAW, "IPC_LOCK": unix.CAP_IPC_LOCK,
	"IPC_OWNER": unix.CAP_IPC_OWNER, "SYS_MODULE": unix.CAP_SYS_MODULE, "SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"SYS_CHROOT": unix.CAP_SYS_CHROOT, "SYS_PTRACE": unix.CAP_SYS_PTRACE, "SYS_PACCT": unix.CAP_SYS_PACCT,
	"SYS_ADMIN": unix.CAP_SYS_ADMIN, "SYS_BOOT": unix.CAP_SYS_BOOT, "SYS_NICE": unix.CAP_SYS_NICE,
	"SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "SYS_TIME": unix.CAP_SYS_TIME, "SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG,
	"MKNOD": unix.CAP_MKNOD, "LEASE": unix.CAP_LEASE, "AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "SETFCAP": unix.CAP_SETFCAP, "MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE,
	"MAC_ADMIN": unix.CAP_MAC_ADMIN, "SYSLOG": unix.CAP_SYSLOG, "WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "AUDIT_READ": unix.CAP_AUDIT_READ, "PERFMON": unix.CAP_PERFMON,
	"BPF": unix.CAP_BPF, "CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// defaultCaps is containerd's default set for an unprivileged container, so
// that a pod behaves the same on the native handler as on runc.
var defaultCaps = capMask("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")

// allCaps: every capability the kernel may have; the trampoline keeps what
// Corral itself holds (never CAP_SYS_RESOURCE here, DESIGN §8).
const allCaps = ^uint64(0)

func capMask(names ...string) uint64 {
	var m uint64
	for _, n := range names {
		m |= 1 << capNames[n]
	}
	return m
}

// capBit parses one CRI capability name.
func capBit(name string) (uint64, bool) {
	n, ok := capNames[strings.TrimPrefix(strings.ToUpper(name), "CAP_")]
	return 1 << n, ok
}

// capabilities computes a container's sets the way containerd does:
// privileged = all; otherwise the default set, "ALL" in add or drop first,
// then the individual adds and drops. Ambient capabilities (for non-root
// users, the only ones that survive exec) are added to the set too.
func capabilities(sc *runtimeapi.LinuxContainerSecurityContext) (*proc.Caps, error) {
	if sc.GetPrivileged() {
		return &proc.Caps{Bounding: allCaps, Effective: allCaps, Permitted: allCaps}, nil
	}
	set := defaultCaps
	c := sc.GetCapabilities()
	isAll := func(s string) bool { return strings.EqualFold(s, "ALL") }
	for _, a := range c.GetAddCapabilities() {
		if isAll(a) {
			set = allCaps
		}
	}
	for _, d := range c.GetDropCapabilities() {
		if isAll(d) {
			set = 0
		}
	}
	parse := func(field, name string) (uint64, error) {
		bit, ok := capBit(name)
		if !ok {
			return 0, invalid("security_context.capabilities.%s: unknown capability %q", field, name)
		}
		return bit, nil
	}
	for _, a := range c.GetAddCapabilities() {
		if isAll(a) {
			continue
		}
		bit, err := parse("add_capabilities", a)
		if err != nil {
			return nil, err
		}
		set |= bit
	}
	for _, d := range c.GetDropCapabilities() {
		if isAll(d) {
			continue
		}
		bit, err := parse("drop_capabilities", d)
		if err != nil {
			return nil, err
		}
		set &^= bit
	}
	var amb uint64
	for _, a := range c.GetAddAmbientCapabilities() {
		bit, err := parse("add_ambient_capabilities", a)
		if err != nil {
			return nil, err
		}
		amb |= bit
	}
	set |= amb
	return &proc.Caps{Bounding: set, Effective: set, Permitted: set, Ambient: amb}, nil
}
