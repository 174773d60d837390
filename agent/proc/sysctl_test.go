package proc

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestSysctlNamespace(t *testing.T) {
	tests := []struct {
		key, ns string
		ok      bool
	}{
		{"kernel.shm_rmid_forced", "ipc", true},
		{"kernel.msgmax", "ipc", true},
		{"fs.mqueue.msg_max", "ipc", true},
		{"net.ipv4.ip_forward", "net", true},
		{"net/ipv4/conf/eth0.100/forwarding", "net", true},
		{"kernel.hostname", "uts", true},
		{"kernel.pid_max", "", false},
		{"fs.file-max", "", false},
		{"vm.overcommit_memory", "", false},
	}
	for _, tc := range tests {
		ns, ok := SysctlNamespace(tc.key)
		if ns != tc.ns || ok != tc.ok {
			t.Errorf("SysctlNamespace(%q) = %q, %v; want %q, %v", tc.key, ns, ok, tc.ns, tc.ok)
		}
	}
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.100/forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"net.ipv4..x":                       "",
		"net/../../etc/passwd":              "",
	} {
		got, err := sysctlPath(key)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
}

// Sysctls are written in the child's own namespaces, and refused where
// they would reach the host's kernel.
func TestSysctls(t *testing.T) {
	host, err := os.ReadFile("/proc/sys/kernel/shm_rmid_forced")
	if err != nil {
		t.Fatal(err)
	}
	spec := sh("cat /proc/sys/kernel/shm_rmid_forced /proc/sys/fs/mqueue/msg_max")
	spec.NewNamespaces = []string{"ipc"}
	spec.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "77"}
	out, ws, _, err := run(t, spec)
	if err != nil || ws.ExitStatus() != 0 || out != "1\n77\n" {
		t.Errorf("in a new IPC namespace: %q, status %v, %v; want 1 and 77", out, ws, err)
	}
	// Joined rather than created.
	pid := holder(t, "--ipc", "--net") // holder waits for a net namespace of its own
	spec = sh("cat /proc/sys/fs/mqueue/msg_max")
	spec.Namespaces = map[string]string{"ipc": "/proc/" + strconv.Itoa(pid) + "/ns/ipc"}
	spec.Sysctls = map[string]string{"fs.mqueue.msg_max": "55"}
	if out, ws, _, err := run(t, spec); err != nil || out != "55\n" {
		t.Errorf("in a joined IPC namespace: %q, status %v, %v", out, ws, err)
	}
	for _, tc := range []struct {
		name    string
		sysctls map[string]string
		want    string
	}{
		{"not namespaced", map[string]string{"kernel.pid_max": "4194304"}, "not namespaced"},
		{"the host's IPC namespace", map[string]string{"kernel.shm_rmid_forced": "1"}, "needs a ipc namespace"},
	} {
		spec := sh("true")
		spec.Sysctls = tc.sysctls
		_, ws, _, err := run(t, spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) || ws.ExitStatus() != ExitNamespace {
			t.Errorf("%s: %v, status %v; want an error with %q", tc.name, err, ws, tc.want)
		}
	}
	if now, _ := os.ReadFile("/proc/sys/kernel/shm_rmid_forced"); string(now) != string(host) {
		t.Errorf("the host's kernel.shm_rmid_forced changed from %q to %q", host, now)
	}
}
