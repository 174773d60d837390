package guest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NetConfig is the pod network the host's CNI gave the VM: the address
// (with its prefix) and the default gateway, passed on the kernel command
// line as corral.ip= and corral.gw= (runtimes/qemu).
type NetConfig struct {
	Addr    netip.Prefix
	Gateway netip.Addr
}

// ParseCmdline reads the network settings from a kernel command line; ok
// is false when it carries none (a pod without a NIC).
func ParseCmdline(cmdline string) (c NetConfig, ok bool, err error) {
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "corral.ip":
			if c.Addr, err = netip.ParsePrefix(v); err != nil {
				return c, false, fmt.Errorf("corral.ip: %w", err)
			}
			ok = true
		case "corral.gw":
			if c.Gateway, err = netip.ParseAddr(v); err != nil {
				return c, false, fmt.Errorf("corral.gw: %w", err)
			}
		}
	}
	return c, ok, nil
}

// ConfigureNet waits for ifname (virtio_net loads in the background) and
// gives it the pod's address and default route.
func ConfigureNet(ifname string, c NetConfig, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat("/sys/class/net/" + ifname); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %s", ifname, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := linkUp(ifname); err != nil {
		return fmt.Errorf("%s up: %w", ifname, err)
	}
	ifi, err := ifIndex(ifname)
	if err != nil {
		return err
	}
	a := c.Addr.Addr().As4()
	// ifaddrmsg: family, prefixlen, flags, scope, index
	msg := []byte{unix.AF_INET, byte(c.Addr.Bits()), 0, 0, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(msg[4:], uint32(ifi))
	msg = append(msg, rtattr(unix.IFA_LOCAL, a[:])...)
	msg = append(msg, rtattr(unix.IFA_ADDRESS, a[:])...)
	if err := netlink(unix.RTM_NEWADDR, msg); err != nil {
		return fmt.Errorf("address %s on %s: %w", c.Addr, ifname, err)
	}
	if !c.Gateway.IsValid() {
		return nil
	}
	gw := c.Gateway.As4()
	// rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(4)
	rt := []byte{unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	oif := make([]byte, 4)
	binary.NativeEndian.PutUint32(oif, uint32(ifi))
	rt = append(rt, rtattr(unix.RTA_GATEWAY, gw[:])...)
	rt = append(rt, rtattr(unix.RTA_OIF, oif)...)
	if err := netlink(unix.RTM_NEWROUTE, rt); err != nil {
		return fmt.Errorf("default route via %s: %w", c.Gateway, err)
	}
	return nil
}

func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("index of %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

func rtattr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

// netlink sends one rtnetlink request that creates something and waits
// for its acknowledgement.
func netlink(typ uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n < unix.SizeofNlMsghdr+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("unexpected netlink answer")
	}
	if e := int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:])); e != 0 {
		return unix.Errno(-e)
	}
	return nil
}
