package socket

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// listener is one open Listen*= entry. The Socket owns file for its whole
// life; services get duplicates (see Files).
type listener struct {
	addr address
	// fd is file's descriptor, kept so that nothing calls file.Fd(), which
	// would switch a non-blocking fd (FIFOs, Accept=yes) to blocking.
	fd   int
	file *os.File
	// node is the file-system node we made (socket inode or FIFO) and its
	// identity, so that Stop with RemoveOnStop never unlinks a node somebody
	// else re-created at the same path.
	node     string
	dev, ino uint64
}

// owner is the resolved SocketUser=/SocketGroup=; -1 means "leave as is".
type owner struct{ uid, gid int }

// resolveOwner follows systemd: SocketUser= alone also sets the user's
// primary group; names or numbers are accepted.
func resolveOwner(userName, groupName string) (owner, error) {
	o := owner{-1, -1}
	if userName != "" {
		u, err := lookupUser(userName)
		if err != nil {
			return o, fmt.Errorf("SocketUser=%s: %w", userName, err)
		}
		o.uid, _ = strconv.Atoi(u.Uid)
		o.gid, _ = strconv.Atoi(u.Gid)
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			if _, nerr := strconv.Atoi(groupName); nerr != nil {
				return o, fmt.Errorf("SocketGroup=%s: %w", groupName, err)
			}
			g = &user.Group{Gid: groupName}
		}
		o.gid, _ = strconv.Atoi(g.Gid)
	}
	return o, nil
}

func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err == nil {
		return u, nil
	}
	if _, nerr := strconv.Atoi(name); nerr != nil {
		return nil, err
	}
	if u, err := user.LookupId(name); err == nil {
		return u, nil
	}
	// A bare number with no passwd entry is still a valid owner.
	return &user.User{Uid: name, Gid: name}, nil
}

// mkdirParents creates the missing parents of path with exactly mode
// (DirectoryMode=), independent of the process umask. Existing directories
// are left alone, as systemd does.
func mkdirParents(path string, mode uint32) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirParents(dir, mode); err != nil {
		return err
	}
	if err := unix.Mkdir(dir, mode); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	if err := unix.Chmod(dir, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: dir, Err: err}
	}
	return nil
}

// open creates, configures and binds one listener. The returned listener
// owns its fd; on error nothing is left open.
func (s *Socket) open(a address, own owner) (*listener, error) {
	if a.kind == "fifo" {
		return s.openFIFO(a, own)
	}
	family := a.family
	fd, err := unix.Socket(family, a.sockType()|unix.SOCK_CLOEXEC, 0)
	if err != nil && a.anyPort && errors.Is(err, unix.EAFNOSUPPORT) {
		// A bare port on a host without IPv6 binds 0.0.0.0 (systemd does
		// the same when socket_ipv6_is_supported() is false).
		family = unix.AF_INET
		fd, err = unix.Socket(family, a.sockType()|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	l := &listener{addr: a, fd: fd, file: os.NewFile(uintptr(fd), a.raw)}
	if err := s.configure(fd, family, a); err != nil {
		l.file.Close()
		return nil, err
	}
	if err := s.bind(l, fd, family, own); err != nil {
		l.file.Close()
		return nil, err
	}
	if a.kind != "datagram" {
		if err := unix.Listen(fd, s.cfg.Backlog); err != nil {
			l.file.Close()
			return nil, fmt.Errorf("listen: %w", err)
		}
	}
	return l, nil
}

// configure applies the socket options of the [Socket] section that must be
// set before bind (SO_REUSEPORT, IPV6_V6ONLY) and those that are simply
// inherited by accepted connections (keepalive, nodelay, buffers).
func (s *Socket) configure(fd, family int, a address) error {
	c := s.cfg
	set := func(level, opt, v int, name string) error {
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
			return fmt.Errorf("setsockopt %s: %w", name, err)
		}
		return nil
	}
	inet := family == unix.AF_INET || family == unix.AF_INET6
	if inet {
		if err := set(unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR"); err != nil {
			return err
		}
		if c.ReusePort {
			if err := set(unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, "SO_REUSEPORT"); err != nil {
				return err
			}
		}
	}
	if inet && c.FreeBind {
		opt, lvl := unix.IP_FREEBIND, unix.IPPROTO_IP
		if family == unix.AF_INET6 {
			opt, lvl = unix.IPV6_FREEBIND, unix.IPPROTO_IPV6
		}
		if err := set(lvl, opt, 1, "FREEBIND"); err != nil {
			return err
		}
	}
	if inet && c.Transparent {
		opt, lvl := unix.IP_TRANSPARENT, unix.IPPROTO_IP
		if family == unix.AF_INET6 {
			opt, lvl = unix.IPV6_TRANSPARENT, unix.IPPROTO_IPV6
		}
		if err := set(lvl, opt, 1, "TRANSPARENT"); err != nil {
			return err
		}
	}
	if c.Broadcast && a.kind == "datagram" {
		if err := set(unix.SOL_SOCKET, unix.SO_BROADCAST, 1, "SO_BROADCAST"); err != nil {
			return err
		}
	}
	if c.PassSecurity && family == unix.AF_UNIX {
		if err := set(unix.SOL_SOCKET, unix.SO_PASSSEC, 1, "SO_PASSSEC"); err != nil {
			return err
		}
	}
	if family == unix.AF_INET6 {
		switch c.BindIPv6Only {
		case "both":
			if err := set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0, "IPV6_V6ONLY"); err != nil {
				return err
			}
		case "ipv6-only":
			if err := set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1, "IPV6_V6ONLY"); err != nil {
				return err
			}
		}
	}
	if c.PassCredentials && family == unix.AF_UNIX {
		if err := set(unix.SOL_SOCKET, unix.SO_PASSCRED, 1, "SO_PASSCRED"); err != nil {
			return err
		}
	}
	if c.KeepAlive && a.kind != "datagram" {
		if err := set(unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"); err != nil {
			return err
		}
	}
	if c.NoDelay && inet && a.kind == "stream" {
		if err := set(unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "TCP_NODELAY"); err != nil {
			return err
		}
	}
	// As root, the FORCE variants lift the rmem_max/wmem_max caps, which is
	// what a unit asking for a buffer size means.
	if c.ReceiveBuffer > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.ReceiveBuffer) != nil {
			if err := set(unix.SOL_SOCKET, unix.SO_RCVBUF, c.ReceiveBuffer, "SO_RCVBUF"); err != nil {
				return err
			}
		}
	}
	if c.SendBuffer > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, c.SendBuffer) != nil {
			if err := set(unix.SOL_SOCKET, unix.SO_SNDBUF, c.SendBuffer, "SO_SNDBUF"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Socket) bind(l *listener, fd, family int, own owner) error {
	a := l.addr
	var sa unix.Sockaddr
	switch family {
	case unix.AF_INET:
		sa4 := &unix.SockaddrInet4{Port: a.port}
		if a.ip.Is4() {
			sa4.Addr = a.ip.As4()
		}
		sa = sa4
	case unix.AF_INET6:
		sa6 := &unix.SockaddrInet6{Port: a.port, Addr: a.ip.As16()}
		if z := a.ip.Zone(); z != "" {
			ifi, err := net.InterfaceByName(z)
			if err != nil {
				return fmt.Errorf("scope %s: %w", z, err)
			}
			sa6.ZoneId = uint32(ifi.Index)
		}
		sa = sa6
	case unix.AF_UNIX:
		sa = &unix.SockaddrUnix{Name: a.path}
	}
	if family != unix.AF_UNIX || a.abstract() {
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return nil
	}

	// A path socket: parents with DirectoryMode=; the socket inode takes its
	// mode from the socket fd masked by the umask, so fchmod before bind
	// keeps the node from ever being more open than SocketMode=, and chmod
	// after bind makes it exact.
	if err := mkdirParents(a.path, s.cfg.DirectoryMode); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, s.cfg.SocketMode); err != nil {
		return fmt.Errorf("fchmod: %w", err)
	}
	err := unix.Bind(fd, sa)
	if errors.Is(err, unix.EADDRINUSE) {
		// A stale node from an earlier run: systemd unlinks and retries.
		var st unix.Stat_t
		if unix.Lstat(a.path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			if unix.Unlink(a.path) == nil {
				err = unix.Bind(fd, sa)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := s.finishNode(l, own); err != nil {
		unix.Unlink(a.path)
		return err
	}
	return nil
}

// finishNode sets the exact mode and owner of a node we created and records
// its identity for RemoveOnStop.
func (s *Socket) finishNode(l *listener, own owner) error {
	p := l.addr.path
	if err := unix.Chmod(p, s.cfg.SocketMode); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	if own.uid >= 0 || own.gid >= 0 {
		if err := unix.Lchown(p, own.uid, own.gid); err != nil {
			return &os.PathError{Op: "chown", Path: p, Err: err}
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &os.PathError{Op: "stat", Path: p, Err: err}
	}
	l.node, l.dev, l.ino = p, st.Dev, st.Ino
	return nil
}

// openFIFO follows systemd's fifo_address_create: an existing FIFO is
// reused, anything else at the path is an error, and the FIFO is opened
// read-write and non-blocking so that it never reports EOF (POLLHUP) when the
// last writer goes away.
func (s *Socket) openFIFO(a address, own owner) (*listener, error) {
	if err := mkdirParents(a.path, s.cfg.DirectoryMode); err != nil {
		return nil, err
	}
	if err := unix.Mkfifo(a.path, s.cfg.SocketMode); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	fd, err := unix.Open(a.path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	l := &listener{addr: a, fd: fd, file: os.NewFile(uintptr(fd), a.raw)}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		l.file.Close()
		return nil, fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		l.file.Close()
		return nil, fmt.Errorf("%s exists and is not a FIFO", a.path)
	}
	if err := s.finishNode(l, own); err != nil {
		l.file.Close()
		return nil, err
	}
	return l, nil
}

// removeNode unlinks the node l created, if it is still the same node.
func (l *listener) removeNode() error {
	if l.node == "" {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(l.node, &st); err != nil {
		return nil
	}
	if st.Dev != l.dev || st.Ino != l.ino {
		return nil
	}
	if err := unix.Unlink(l.node); err != nil {
		return &os.PathError{Op: "unlink", Path: l.node, Err: err}
	}
	return nil
}
