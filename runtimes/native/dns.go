package native

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/proc"
)

// resolvConf is the pod's generated resolv.conf, in its run directory.
func (b *Backend) resolvConf(podID string) string {
	return filepath.Join(b.cfg.RunDir, "pods", podID, "resolv.conf")
}

// writeResolvConf writes the pod's DNS config in resolv.conf form (as
// containerd does), or nothing when the pod has none: then containers see
// the host's /etc/resolv.conf.
func (b *Backend) writeResolvConf(podID string, dns *runtimeapi.DNSConfig) error {
	if dns == nil {
		return nil
	}
	var sb strings.Builder
	for _, v := range append(append(append([]string{}, dns.GetServers()...), dns.GetSearches()...), dns.GetOptions()...) {
		if strings.ContainsAny(v, "\n\r") {
			return invalid("pod %s: DNS config entry %q contains a line break", podID, v)
		}
	}
	if s := dns.GetSearches(); len(s) > 0 {
		fmt.Fprintf(&sb, "search %s\n", strings.Join(s, " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&sb, "nameserver %s\n", s)
	}
	if o := dns.GetOptions(); len(o) > 0 {
		fmt.Fprintf(&sb, "options %s\n", strings.Join(o, " "))
	}
	p := b.resolvConf(podID)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("pod %s: resolv.conf: %w", podID, err)
	}
	if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("pod %s: resolv.conf: %w", podID, err)
	}
	return nil
}

// dnsMount binds the pod's resolv.conf over /etc/resolv.conf in the
// container's own mount namespace, unless the pod has no DNS config or
// the container mounts /etc/resolv.conf itself.
func (b *Backend) dnsMount(podID string, mounts []proc.Mount) []proc.Mount {
	p := b.resolvConf(podID)
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	for _, m := range mounts {
		if m.Target == "/etc/resolv.conf" {
			return nil
		}
	}
	if _, err := os.Stat("/etc/resolv.conf"); err != nil {
		return nil // nothing to mount on, and the host's /etc is not ours to change
	}
	return []proc.Mount{{Source: p, Target: "/etc/resolv.conf"}}
}

// checkSysctls refuses pod sysctls that would change the host: each must
// belong to a namespace the pod has of its own (its holder's).
func checkSysctls(sysctls map[string]string, own []string) error {
	for k := range sysctls {
		ns, ok := proc.SysctlNamespace(k)
		if !ok {
			return invalid("sysctl %s is not namespaced: setting it in a native pod would change the host's kernel", k)
		}
		found := false
		for _, n := range own {
			found = found || n == ns
		}
		if !found {
			return invalid("sysctl %s needs the pod's own %s namespace; the pod shares the host's", k, ns)
		}
	}
	return nil
}
