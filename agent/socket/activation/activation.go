// Package activation is the receiving side of socket activation: what
// sd_listen_fds(3) and sd_listen_fds_with_names(3) do, for Go services and for
// the helper processes in Corral's own tests. It is deliberately standalone
// (stdlib and x/sys only) so that any small Go program can import it.
package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ListenFDsStart is the first passed file descriptor, SD_LISTEN_FDS_START.
const ListenFDsStart = 3

// Files returns the file descriptors passed by the service manager, in the
// order of the socket unit's Listen*= lines, named after LISTEN_FDNAMES
// (or "unknown" as libsystemd does when names are missing).
//
// It follows sd_listen_fds exactly: no LISTEN_PID, or a LISTEN_PID that is not
// this process, means "nothing was passed to me" (the variables were inherited
// from a parent) and returns no files and no error; a malformed value is an
// error. Each returned fd gets FD_CLOEXEC so it does not leak into programs
// this process starts. With unsetEnv, LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES are removed from the environment in every case, so children
// cannot mistake them for their own.
func Files(unsetEnv bool) ([]*os.File, error) {
	if unsetEnv {
		defer func() {
			os.Unsetenv("LISTEN_PID")
			os.Unsetenv("LISTEN_FDS")
			os.Unsetenv("LISTEN_FDNAMES")
		}()
	}
	pidStr, ok := os.LookupEnv("LISTEN_PID")
	if !ok {
		return nil, nil
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("activation: bad LISTEN_PID %q", pidStr)
	}
	if pid != os.Getpid() {
		return nil, nil
	}
	nStr, ok := os.LookupEnv("LISTEN_FDS")
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("activation: bad LISTEN_FDS %q", nStr)
	}
	if n == 0 {
		return nil, nil
	}
	var names []string
	if s, ok := os.LookupEnv("LISTEN_FDNAMES"); ok {
		names = strings.Split(s, ":")
		if len(names) != n {
			return nil, fmt.Errorf("activation: LISTEN_FDNAMES has %d names for %d fds", len(names), n)
		}
	}
	files := make([]*os.File, 0, n)
	for i := 0; i < n; i++ {
		fd := ListenFDsStart + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("activation: fd %d: %w", fd, err)
		}
		name := "unknown"
		if names != nil {
			name = names[i]
		}
		files = append(files, os.NewFile(uintptr(fd), name))
	}
	return files, nil
}

// Listeners is Files for stream servers: each passed fd that is a listening
// socket becomes a net.Listener (at the same index); any other fd gives nil
// there and is closed. net.FileListener duplicates the fd, so the originals
// are closed and the listeners own what is left.
func Listeners(unsetEnv bool) ([]net.Listener, error) {
	files, err := Files(unsetEnv)
	if err != nil {
		return nil, err
	}
	lns := make([]net.Listener, len(files))
	for i, f := range files {
		if ln, err := net.FileListener(f); err == nil {
			lns[i] = ln
		}
		f.Close()
	}
	return lns, nil
}
