package notify

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// FromFile makes a Listener of a notify socket inherited across exec
// (daemon-reexec): services keep the same $NOTIFY_SOCKET and no datagram
// sent while the core re-executes is lost, it waits in the socket's queue.
// It checks that the fd is a datagram socket bound to path and sets
// SO_PASSCRED again. f is consumed.
func FromFile(f *os.File, path string) (*Listener, error) {
	defer f.Close()
	fd := int(f.Fd())
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
		return nil, fmt.Errorf("inherited notify socket %s (fd %d): not a datagram socket (%v)", path, fd, err)
	}
	sa, err := unix.Getsockname(fd)
	if ua, ok := sa.(*unix.SockaddrUnix); err != nil || !ok || ua.Name != path {
		return nil, fmt.Errorf("inherited notify socket %s (fd %d): bound to %v, %v", path, fd, sa, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		return nil, fmt.Errorf("inherited notify socket %s: SO_PASSCRED: %w", path, err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("inherited notify socket %s: %w", path, err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("inherited notify socket %s: not a unix socket", path)
	}
	return &Listener{path: path, conn: uc}, nil
}

// PassOn returns a duplicate of the socket's fd without close-on-exec, for
// the next program image of the core (FromFile there). The Listener stays
// usable until the exec.
func (l *Listener) PassOn() (int, error) {
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("notify socket %s: %w", l.path, err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD, 3) }); err != nil {
		return -1, fmt.Errorf("notify socket %s: %w", l.path, err)
	}
	if derr != nil {
		return -1, fmt.Errorf("notify socket %s: dup: %w", l.path, derr)
	}
	return fd, nil
}
