package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// ipcSysctls are the kernel.* sysctls that belong to an IPC namespace
// (fs.mqueue.* do as well); every other kernel.* sysctl is the host's.
var ipcSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// SysctlNamespace is the namespace type ("ipc", "net" or "uts") whose
// copy of the sysctl key (dotted, e.g. "net.ipv4.ip_forward", or with
// slashes) a write in that namespace changes; ok is false for a sysctl
// that no namespace covers, which would change the host's kernel.
func SysctlNamespace(key string) (ns string, ok bool) {
	k := strings.ReplaceAll(key, "/", ".")
	switch {
	case slices.Contains(ipcSysctls, k), strings.HasPrefix(k, "fs.mqueue."):
		return "ipc", true
	case strings.HasPrefix(k, "net."):
		return "net", true
	case k == "kernel.hostname", k == "kernel.domainname":
		return "uts", true
	}
	return "", false
}

// sysctlPath is the /proc/sys file of key: dots separate the levels unless
// the key uses slashes (which lets a level contain a dot, e.g. an
// interface name).
func sysctlPath(key string) (string, error) {
	p := key
	if !strings.Contains(key, "/") {
		p = strings.ReplaceAll(key, ".", "/")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("sysctl %s: bad name", key)
		}
	}
	return filepath.Join("/proc/sys", p), nil
}

// applySysctls writes the spec's sysctls. Each must belong to a namespace
// the child created or joined (never one it shares with the agent by
// default), so that a mistake cannot change the host's kernel; /proc/sys
// shows the writer's own namespaces.
func (w *wire) applySysctls() error {
	keys := make([]string, 0, len(w.Sysctls))
	for k := range w.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ns, ok := SysctlNamespace(k)
		if !ok {
			return fmt.Errorf("sysctl %s: not namespaced, it would change the host", k)
		}
		if _, joined := w.Namespaces[ns]; !joined && !slices.Contains(w.NewNamespaces, ns) {
			return fmt.Errorf("sysctl %s: needs a %s namespace of its own", k, ns)
		}
		p, err := sysctlPath(k)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(w.Sysctls[k]), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, w.Sysctls[k], err)
		}
	}
	return nil
}
