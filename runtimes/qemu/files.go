package qemu

import (
	"fmt"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podHostname is the pod's hostname (the guest's UTS name): the config's,
// else its name, at most 64 bytes.
func podHostname(cfg *runtimeapi.PodSandboxConfig) string {
	h := cfg.GetHostname()
	if h == "" {
		h = cfg.GetMetadata().GetName()
	}
	return h[:min(len(h), 64)]
}

// etcFiles are the files every container of a VM pod gets in its /etc,
// as runc containers get them bind-mounted: resolv.conf from the pod's DNS
// config (none: the image's stays), hostname, and hosts naming the pod IP.
func etcFiles(cfg *runtimeapi.PodSandboxConfig, podIP string) (map[string]string, error) {
	host := podHostname(cfg)
	files := map[string]string{"/etc/hostname": host + "\n"}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if podIP != "" {
		hosts += podIP + "\t" + host + "\n"
	}
	files["/etc/hosts"] = hosts
	dns := cfg.GetDnsConfig()
	if dns == nil {
		return files, nil
	}
	for _, v := range append(append(append([]string{}, dns.GetServers()...), dns.GetSearches()...), dns.GetOptions()...) {
		if strings.ContainsAny(v, "\n\r") {
			return nil, invalid("DNS config entry %q contains a line break", v)
		}
	}
	var sb strings.Builder
	if s := dns.GetSearches(); len(s) > 0 {
		fmt.Fprintf(&sb, "search %s\n", strings.Join(s, " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&sb, "nameserver %s\n", s)
	}
	if o := dns.GetOptions(); len(o) > 0 {
		fmt.Fprintf(&sb, "options %s\n", strings.Join(o, " "))
	}
	files["/etc/resolv.conf"] = sb.String()
	return files, nil
}
