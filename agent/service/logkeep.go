package service

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/proc"
)

// logKeeper is a LogSink that can hand the child a descriptor of its log
// pipe's read end (issue 7): with it, the pipe keeps a reader while no core
// runs, so the unit blocks at worst instead of dying of SIGPIPE, and the
// next core takes the read end back (manager, after re-adoption).
// *logs.Store satisfies it.
type logKeeper interface {
	PipeKeep(unit string, stream logs.Stream) (w, keep *os.File, err error)
}

// logPipe returns the write end of a log pipe for stream. With a
// logKeeper, the read end is also appended to sp.ExtraFiles, after the
// socket activation fds: LISTEN_FDS counts only those, so the numbering
// systemd promises (3 .. 3+LISTEN_FDS-1) is unchanged, and the kept fd is
// 3+LISTEN_FDS (stdout's) and the next one (stderr's). The next core does
// not rely on the number: it finds the read end by the pipe's inode, next
// to the process's fd 1 or 2 (manager.reclaimLogs).
func (s *Service) logPipe(stream logs.Stream, sp *proc.Spec, files *[]*os.File) (*os.File, error) {
	if k, ok := s.d.Logs.(logKeeper); ok {
		w, keep, err := k.PipeKeep(s.u.Name, stream)
		if err != nil {
			return nil, fmt.Errorf("unit %s: log pipe for %s: %w", s.u.Name, stream, err)
		}
		*files = append(*files, w, keep)
		n := len(sp.ExtraFiles)
		sp.ExtraFiles = append(sp.ExtraFiles[:n:n], keep) // never into the socket unit's slice
		return w, nil
	}
	f, err := s.d.Logs.Pipe(s.u.Name, stream)
	if err != nil {
		return nil, fmt.Errorf("unit %s: log pipe for %s: %w", s.u.Name, stream, err)
	}
	*files = append(*files, f)
	return f, nil
}

// keepHookedReaders covers output that Adjust rerouted (a CRI container's
// attach tee): if the process's stdout or stderr is now another pipe whose
// read end is in this process, the child gets a descriptor of that read
// end too, found by the pipe's inode among our fds. The next core then
// drains that pipe into the log store instead. Only spawns whose output
// Adjust changed pay for the scan.
func keepHookedReaders(sp *proc.Spec, out, errf *os.File, files *[]*os.File) {
	for _, f := range []*os.File{sp.Stdout, sp.Stderr} {
		if f == nil || f == out || f == errf {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			continue
		}
		r := ownReadEnd(st.Ino)
		if r == nil {
			continue
		}
		*files = append(*files, r)
		n := len(sp.ExtraFiles)
		sp.ExtraFiles = append(sp.ExtraFiles[:n:n], r)
	}
}

// ownReadEnd returns a close-on-exec duplicate of a descriptor of this
// process that reads the pipe with inode ino; nil if there is none.
func ownReadEnd(ino uint64) *os.File {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	want := "pipe:[" + strconv.FormatUint(ino, 10) + "]"
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || l != want {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_ACCMODE != unix.O_RDONLY {
			continue
		}
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil
		}
		return os.NewFile(uintptr(nfd), "kept "+want)
	}
	return nil
}
