// Package cni attaches pod network namespaces with libcni, for every
// backend that gives pods their own network (native pods, and VM pods whose
// QEMU runs inside the namespace). Plugins run through the agent's spawner
// and reaper (Exec), never os/exec, whose Wait would race the agent's
// wait4(-1) loop.
package cni

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Network sets up pod networks with the configuration found in a directory
// (the first file in name order, as kubelet's other runtimes do).
type Network struct {
	confDir string
	bin     []string
	cache   string
}

// New returns the network of confDir with plugins searched in bin; libcni
// keeps its results in cache (needed to delete what was added).
func New(confDir string, bin []string, cache string) *Network {
	return &Network{confDir: confDir, bin: bin, cache: cache}
}

// Config loads the network configuration list. It is re-read on every use
// so that a configuration dropped in later takes effect without a restart.
func (n *Network) Config() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(n.confDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("CNI configuration in %s: %w", n.confDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CNI configuration in %s", n.confDir)
	}
	sort.Strings(files)
	f := files[0]
	if strings.HasSuffix(f, ".conflist") {
		l, err := libcni.ConfListFromFile(f)
		if err != nil {
			return nil, fmt.Errorf("CNI configuration %s: %w", f, err)
		}
		return l, nil
	}
	c, err := libcni.ConfFromFile(f)
	if err != nil {
		return nil, fmt.Errorf("CNI configuration %s: %w", f, err)
	}
	l, err := libcni.ConfListFromConf(c)
	if err != nil {
		return nil, fmt.Errorf("CNI configuration %s: %w", f, err)
	}
	return l, nil
}

func (n *Network) rt(id, nsPath string, cfg *runtimeapi.PodSandboxConfig) *libcni.RuntimeConf {
	md := cfg.GetMetadata()
	return &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       nsPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", md.GetNamespace()},
			{"K8S_POD_NAME", md.GetName()},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
			{"K8S_POD_UID", md.GetUid()},
		},
	}
}

// Attachment is what CNI gave a pod: its addresses (the first one is the
// pod IP) and the default gateway, if the plugins named one.
type Attachment struct {
	Addrs   []netip.Prefix
	Gateway netip.Addr
	// MAC is eth0's hardware address in the pod's namespace, when the
	// plugins reported it (a VM pod hands it to its guest).
	MAC string
}

// IPs are the pod's addresses without their prefix lengths, as the CRI
// reports them.
func (a Attachment) IPs() []string {
	var out []string
	for _, p := range a.Addrs {
		out = append(out, p.Addr().String())
	}
	return out
}

// Add attaches the network namespace nsPath of pod id as eth0.
func (n *Network) Add(ctx context.Context, x invoke.Exec, id, nsPath string, cfg *runtimeapi.PodSandboxConfig) (Attachment, error) {
	var a Attachment
	l, err := n.Config()
	if err != nil {
		return a, err
	}
	c := libcni.NewCNIConfigWithCacheDir(n.bin, n.cache, x)
	res, err := c.AddNetworkList(ctx, l, n.rt(id, nsPath, cfg))
	if err != nil {
		return a, fmt.Errorf("CNI network %s for pod %s: %w", l.Name, id, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return a, fmt.Errorf("CNI network %s for pod %s: result: %w", l.Name, id, err)
	}
	for _, i := range r.Interfaces {
		if i.Name == "eth0" && i.Sandbox != "" {
			a.MAC = i.Mac
		}
	}
	for _, ip := range r.IPs {
		addr, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		ones, _ := ip.Address.Mask.Size()
		a.Addrs = append(a.Addrs, netip.PrefixFrom(addr.Unmap(), ones))
		if !a.Gateway.IsValid() && ip.Gateway != nil {
			if gw, ok := netip.AddrFromSlice(ip.Gateway); ok {
				a.Gateway = gw.Unmap()
			}
		}
	}
	return a, nil
}

// Del detaches pod id; nsPath may be "" once the namespace is gone.
func (n *Network) Del(ctx context.Context, x invoke.Exec, id, nsPath string, cfg *runtimeapi.PodSandboxConfig) error {
	l, err := n.Config()
	if err != nil {
		return err
	}
	c := libcni.NewCNIConfigWithCacheDir(n.bin, n.cache, x)
	if err := c.DelNetworkList(ctx, l, n.rt(id, nsPath, cfg)); err != nil {
		return fmt.Errorf("CNI network %s for pod %s: delete: %w", l.Name, id, err)
	}
	return nil
}
