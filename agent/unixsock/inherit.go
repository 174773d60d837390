package unixsock

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// EnvListenFDs names the environment variable through which a core that
// re-executes itself (daemon-reexec, upgrade) hands its listening sockets to
// the next program image: "name:fd,name:fd", e.g. "api:7,cri:9,notify:8".
// The sockets never close, so clients that connect meanwhile wait in the
// backlog instead of getting ECONNREFUSED or ENOENT.
const EnvListenFDs = "CORRAL_LISTEN_FDS"

// FormatFDs renders fds for EnvListenFDs, names in order so that the value
// is stable.
func FormatFDs(fds map[string]int) string {
	names := make([]string, 0, len(fds))
	for n := range fds {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ":" + strconv.Itoa(fds[n])
	}
	return strings.Join(parts, ",")
}

// Inherited takes the sockets a previous image of this process passed in
// EnvListenFDs: it parses the variable, removes it from the environment
// (so that nothing we spawn sees it), and marks each fd close-on-exec again
// before anything forks. No variable: an empty map.
func Inherited() (map[string]*os.File, error) {
	v, ok := os.LookupEnv(EnvListenFDs)
	if !ok {
		return map[string]*os.File{}, nil
	}
	os.Unsetenv(EnvListenFDs)
	return parseFDs(v)
}

func parseFDs(v string) (map[string]*os.File, error) {
	out := map[string]*os.File{}
	if v == "" {
		return out, nil
	}
	for _, p := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(p, ":")
		fd, err := strconv.Atoi(num)
		if !ok || name == "" || err != nil || fd < 3 {
			return nil, fmt.Errorf("%s=%q: bad entry %q (want name:fd, fd ≥ 3)", EnvListenFDs, v, p)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s=%q: %s given twice", EnvListenFDs, v, name)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("%s: %s fd %d: %w", EnvListenFDs, name, fd, err)
		}
		unix.CloseOnExec(fd)
		out[name] = os.NewFile(uintptr(fd), name)
	}
	return out, nil
}

// FromFile turns an inherited listening unix socket back into a listener
// that is unlinked on close, like one from Listen. It checks that the fd is
// a listening stream socket bound to path, so that a wrong number in the
// environment fails loudly instead of serving on something else. f is
// consumed.
func FromFile(f *os.File, path string) (net.Listener, error) {
	defer f.Close()
	fd := int(f.Fd())
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("inherited socket %s (fd %d): not a stream socket (%v)", path, fd, err)
	}
	if acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || acc != 1 {
		return nil, fmt.Errorf("inherited socket %s (fd %d): not listening (%v)", path, fd, err)
	}
	sa, err := unix.Getsockname(fd)
	if ua, ok := sa.(*unix.SockaddrUnix); err != nil || !ok || ua.Name != path {
		return nil, fmt.Errorf("inherited socket %s (fd %d): bound to %v, %v", path, fd, sa, err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("inherited socket %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, nil
}

// PassOn prepares l to outlive this program image: it returns a duplicate
// fd without close-on-exec, to be named in EnvListenFDs, and stops l from
// unlinking its path when it is closed (the socket lives on in the dup).
func PassOn(l net.Listener) (int, error) {
	ul, ok := l.(*net.UnixListener)
	if !ok {
		return -1, fmt.Errorf("pass on %v: not a unix listener", l.Addr())
	}
	rc, err := ul.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("pass on %v: %w", l.Addr(), err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD, 3) }); err != nil {
		return -1, fmt.Errorf("pass on %v: %w", l.Addr(), err)
	}
	if derr != nil {
		return -1, fmt.Errorf("pass on %v: dup: %w", l.Addr(), derr)
	}
	ul.SetUnlinkOnClose(false)
	return fd, nil
}
