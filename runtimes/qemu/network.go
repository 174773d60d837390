package qemu

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/proc"
	"corral.io/corral/runtimes/cni"
)

// podNet is a VM pod's network: a network namespace (a bind-mounted nsfs
// file, so no holder process is needed) that CNI attached as eth0, with a
// bridge inside it joining eth0 and the tap QEMU's virtio-net uses. The
// CNI address moves into the guest: the namespace itself keeps none, so
// the pod IP answers from inside the VM. The guest takes over eth0's MAC
// (eth0 gets a new one), so neighbours that learned the pod IP's MAC reach
// the guest.
type podNet struct {
	ns  string // nsfs bind mount
	att cni.Attachment
	cni bool // CNI ADD succeeded: DEL is owed
}

// Tap is the tap device in every VM pod's namespace.
const Tap = "tap0"

// newNetNS creates a network namespace and bind-mounts it at path. The
// calling thread is moved into a new namespace and back; if moving back
// fails the thread stays locked and dies with its goroutine.
func newNetNS(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare net: %w", err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			errc <- fmt.Errorf("return to the agent's network namespace: %w", rerr)
			return // the thread stays locked and is thrown away
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("bind network namespace to %s: %w", path, err)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (b *Backend) exec() cni.Exec {
	return cni.Exec{Spawner: b.units.Spawner(), Reaper: b.units.Reaper(), Log: b.log}
}

// hasCNI tells whether a network configuration exists. Without one a VM
// pod boots without a NIC (reachable only through port-forward), as VM
// pods did before networking.
func (b *Backend) hasCNI() bool {
	_, err := b.net.Config()
	return err == nil
}

// setupNet creates the pod's namespace, attaches it with CNI and wires
// tap0 to eth0 through a bridge. On error what was done is left in n for
// teardownNet.
func (b *Backend) setupNet(ctx context.Context, id, nsPath string, cfg *runtimeapi.PodSandboxConfig) (*podNet, error) {
	n := &podNet{ns: nsPath}
	if err := newNetNS(nsPath); err != nil {
		return n, err
	}
	n.cni = true
	att, err := b.net.Add(ctx, b.exec(), id, nsPath, cfg)
	if err != nil {
		n.cni = false
		return n, err
	}
	n.att = att
	if len(att.Addrs) == 0 || !att.Addrs[0].Addr().Is4() {
		return n, fmt.Errorf("CNI gave pod %s no IPv4 address (%v): VM pods need one", id, att.Addrs)
	}
	if att.MAC == "" {
		return n, fmt.Errorf("CNI did not report eth0's MAC for pod %s", id)
	}
	script := strings.Join([]string{
		"link set lo up",
		"addr flush dev eth0",
		"link set eth0 down",
		"link set eth0 address " + randomMAC(),
		"link add br0 type bridge",
		"link set eth0 master br0",
		"tuntap add dev " + Tap + " mode tap",
		"link set " + Tap + " master br0",
		"link set " + Tap + " up",
		"link set eth0 up",
		"link set br0 up",
	}, "\n") + "\n"
	res, err := b.exec().Run(ctx, ipSpec(nsPath), []byte(script))
	if err == nil && res.Exit.Code() != 0 {
		err = fmt.Errorf("%s: %s", res.Exit, strings.TrimSpace(string(res.Stderr)))
	}
	if err != nil {
		return n, fmt.Errorf("pod %s: bridge eth0 to %s: %w", id, Tap, err)
	}
	return n, nil
}

// teardownNet releases the CNI attachment and the namespace; repeatable.
func (b *Backend) teardownNet(ctx context.Context, id string, cfg *runtimeapi.PodSandboxConfig, n *podNet) error {
	if n == nil {
		return nil
	}
	var errs []error
	if n.cni {
		if err := b.net.Del(ctx, b.exec(), id, n.ns, cfg); err != nil {
			errs = append(errs, err)
		} else {
			n.cni = false
		}
	}
	if err := removeNetNS(n.ns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Cmdline is what the guest needs to configure eth0 (guest/net.go):
// corral.ip=ADDR/LEN [corral.gw=GW] corral.mac=MAC.
func (n *podNet) Cmdline() []string {
	if n == nil || len(n.att.Addrs) == 0 {
		return nil
	}
	out := []string{"corral.ip=" + n.att.Addrs[0].String()}
	if n.att.Gateway.IsValid() {
		out = append(out, "corral.gw="+n.att.Gateway.String())
	}
	return out
}

// randomMAC is a locally administered unicast address.
func randomMAC() string {
	b := make([]byte, 6)
	rand.Read(b)
	b[0] = b[0]&^1 | 2
	return net.HardwareAddr(b).String()
}

// ipSpec runs `ip -batch -` inside the pod's namespace.
func ipSpec(nsPath string) *proc.Spec {
	ip, err := exec.LookPath("ip")
	if err != nil {
		ip = "/usr/sbin/ip"
	}
	return &proc.Spec{Path: ip, Argv: []string{"ip", "-batch", "-"}, Namespaces: map[string]string{"net": nsPath}}
}
