package socket

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/unit"
)

// address is one parsed Listen*= value. Parsing is separate from binding so
// that a unit with a bad address fails before anything is created.
type address struct {
	kind   string // "stream", "datagram", "seqpacket", "fifo"
	raw    string // as written, for errors and logs
	family int    // unix.AF_UNIX, AF_INET, AF_INET6; 0 for fifo
	path   string // unix path ("@name" for abstract) or fifo path
	ip     netip.Addr
	port   int
	// anyPort is a bare "8080": [::]:8080 (dual-stack per BindIPv6Only), or
	// 0.0.0.0 when the host has no IPv6.
	anyPort bool
}

func (a address) sockType() int {
	switch a.kind {
	case "datagram":
		return unix.SOCK_DGRAM
	case "seqpacket":
		return unix.SOCK_SEQPACKET
	}
	return unix.SOCK_STREAM
}

// abstract reports whether a is in the Linux abstract unix namespace, which
// has no file to chmod, chown or unlink.
func (a address) abstract() bool { return a.family == unix.AF_UNIX && strings.HasPrefix(a.path, "@") }

// parseAddress follows systemd's socket_address_parse for the forms Corral
// supports: "/path", "@abstract", "port", "ipv4:port", "[ipv6]:port"
// (with an optional %scope). Kinds other than stream, datagram, seqpacket and
// fifo are rejected here, so that Start names the line that cannot work.
func parseAddress(l unit.SocketListen) (address, error) {
	a := address{kind: l.Kind, raw: l.Address}
	switch l.Kind {
	case "fifo":
		if !strings.HasPrefix(l.Address, "/") {
			return a, fmt.Errorf("FIFO path %q is not absolute", l.Address)
		}
		a.path = l.Address
		return a, nil
	case "stream", "datagram", "seqpacket":
	default:
		return a, fmt.Errorf("Listen kind %q is not supported", l.Kind)
	}
	s := l.Address
	switch {
	case s == "":
		return a, fmt.Errorf("empty address")
	case strings.HasPrefix(s, "/"), strings.HasPrefix(s, "@"):
		// sun_path is 108 bytes including the NUL for paths; an abstract
		// name has the leading NUL instead of the trailing one.
		if len(s) > 107 && s[0] == '/' || len(s) > 108 {
			return a, fmt.Errorf("unix socket path %q is too long", s)
		}
		if s == "@" {
			return a, fmt.Errorf("empty abstract socket name")
		}
		a.family, a.path = unix.AF_UNIX, s
		return a, nil
	case strings.HasPrefix(s, "["):
		ap, err := netip.ParseAddrPort(s)
		if err != nil || !ap.Addr().Is6() {
			return a, fmt.Errorf("bad IPv6 address %q", s)
		}
		if ap.Port() == 0 {
			return a, fmt.Errorf("bad port in %q", s)
		}
		a.family, a.ip, a.port = unix.AF_INET6, ap.Addr(), int(ap.Port())
		return a, nil
	case strings.Contains(s, ":"):
		ap, err := netip.ParseAddrPort(s)
		if err != nil || !ap.Addr().Is4() {
			return a, fmt.Errorf("bad IPv4 address %q", s)
		}
		if ap.Port() == 0 {
			return a, fmt.Errorf("bad port in %q", s)
		}
		a.family, a.ip, a.port = unix.AF_INET, ap.Addr(), int(ap.Port())
		return a, nil
	}
	port, err := strconv.Atoi(s)
	if err != nil || port <= 0 || port > 65535 {
		return a, fmt.Errorf("bad address %q: not a path, port or ip:port", s)
	}
	a.family, a.ip, a.port, a.anyPort = unix.AF_INET6, netip.IPv6Unspecified(), port, true
	return a, nil
}
