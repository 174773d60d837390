package qemu

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Accel is how QEMU runs the guest's CPU, with the arguments that go with
// it. It is detected, never assumed (DESIGN §5): hardware KVM needs vmx or
// svm; a PVM host (kvm_pvm) needs a PVM guest kernel, which Debian's cloud
// kernel is not, so it falls back to TCG like a host without KVM.
type Accel struct {
	Name    string   // "kvm" or "tcg"
	CPU     string   // -cpu
	Cmdline []string // kernel arguments the accelerator needs
	Why     string   // the reason for the choice, for logs and docs
}

// HostInfo is what accelerator detection reads from the host; a value so
// that detection is a pure function under test.
type HostInfo struct {
	CPUInfo string // /proc/cpuinfo
	DevKVM  bool   // /dev/kvm exists
	PVM     bool   // /sys/module/kvm_pvm exists
}

// ReadHostInfo reads the host's facts.
func ReadHostInfo() HostInfo {
	info, _ := os.ReadFile("/proc/cpuinfo")
	_, kvmErr := os.Stat("/dev/kvm")
	_, pvmErr := os.Stat("/sys/module/kvm_pvm")
	return HostInfo{CPUInfo: string(info), DevKVM: kvmErr == nil, PVM: pvmErr == nil}
}

var (
	vmxRe = regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`)
	mhzRe = regexp.MustCompile(`(?m)^cpu MHz\s*:\s*([0-9.]+)`)
)

// DetectAccel picks the accelerator for a stock guest kernel.
func DetectAccel(h HostInfo) Accel {
	switch {
	case h.PVM:
		// PVM needs a PVM guest kernel and -cpu host,-arch-capabilities.
		return tcg(h, "PVM host (kvm_pvm) with a stock guest kernel")
	case h.DevKVM && vmxRe.MatchString(h.CPUInfo):
		return Accel{Name: "kvm", CPU: "host", Why: "hardware virtualisation (vmx/svm) and /dev/kvm"}
	case !h.DevKVM:
		return tcg(h, "no /dev/kvm")
	default:
		return tcg(h, "no vmx/svm CPU flag")
	}
}

// tcg: under TCG the guest's TSC calibration is unreliable (2 boots in 5
// hang without help), so the guest is told the host's frequency.
func tcg(h HostInfo, why string) Accel {
	a := Accel{Name: "tcg", CPU: "max", Why: why, Cmdline: []string{"tsc=reliable"}}
	if m := mhzRe.FindStringSubmatch(h.CPUInfo); m != nil {
		if f, err := strconv.ParseFloat(m[1], 64); err == nil && f > 0 {
			a.Cmdline = []string{"tsc_early_khz=" + strconv.Itoa(int(f*1000)), "tsc=reliable"}
		}
	}
	return a
}

// Machine is one VM's shape and files.
type Machine struct {
	Kernel, Initrd string
	MemoryMiB      int
	CPUs           int
	Images         []string // read-only raw ext4 images; drive i has the serial img<i> in the guest
	AgentSocket    string   // unix socket QEMU listens on for the agent port
	QMPSocket      string
	Console        string // file the serial console goes to
	// MAC, when set, adds a virtio-net NIC on the tap device Tap, which
	// QEMU finds in the network namespace it is started in.
	MAC string
	// NetNS is the network namespace QEMU runs in (where Tap is).
	NetNS string
	// Cmdline is appended to the kernel command line (the guest's
	// network settings).
	Cmdline []string
}

// Args is QEMU's command line for m under a.
func Args(a Accel, m Machine) []string {
	cmdline := append([]string{"console=ttyS0", "quiet", "panic=-1", "reboot=t", "pci=off"}, a.Cmdline...)
	cmdline = append(cmdline, m.Cmdline...)
	args := []string{
		"-M", "microvm", "-accel", a.Name, "-cpu", a.CPU,
		"-m", strconv.Itoa(m.MemoryMiB), "-smp", strconv.Itoa(m.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", m.Kernel, "-initrd", m.Initrd, "-append", strings.Join(cmdline, " "),
		"-serial", "file:" + m.Console,
		"-qmp", "unix:" + m.QMPSocket + ",server=on,wait=off",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=agent,path=" + m.AgentSocket + ",server=on,wait=off",
		"-device", "virtserialport,name=agent,chardev=agent",
	}
	for i, img := range m.Images {
		id := fmt.Sprintf("img%d", i)
		args = append(args, "-drive", "id="+id+",file="+img+",format=raw,if=none,readonly=on",
			"-device", "virtio-blk-device,drive="+id+",serial="+id)
	}
	if m.MAC != "" {
		args = append(args, "-netdev", "tap,id=net0,ifname="+Tap+",script=no,downscript=no",
			"-device", "virtio-net-device,netdev=net0,mac="+m.MAC)
	}
	return args
}
