package service

import (
	"fmt"
	"os"

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
