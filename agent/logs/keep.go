package logs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Keeping a log pipe readable across a restart of the core (issue 7,
// docs/RECOVERY.md). The read end of a unit's pipe normally lives only in
// this process: if the core dies, the pipe has no reader and the next write
// of the unit kills it with SIGPIPE. PipeKeep hands out a second descriptor
// of the read end, which the spawner gives the child as an inherited fd, so
// that the pipe always has a reader. While no core runs, the unit's lines
// wait in the pipe buffer (64 KiB; a writer past that blocks, it never
// dies). The next core takes the read end back from the process with
// pidfd_getfd and hands it to Resume, which drains it like any other pipe.

// PipeKeep is Pipe plus keep, another descriptor of the same pipe's read
// end (close-on-exec in this process) for the child to inherit. Close keep
// after the spawn, like w.
func (s *Store) PipeKeep(unit string, stream Stream) (w, keep *os.File, err error) {
	if err := validStream(stream); err != nil {
		return nil, nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("log pipe for %s: %w", unit, err)
	}
	k, err := unix.FcntlInt(uintptr(p[0]), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, nil, fmt.Errorf("log pipe for %s: %w", unit, err)
	}
	name := "log pipe " + unit + " " + string(stream)
	w = os.NewFile(uintptr(p[1]), name)
	keep = os.NewFile(uintptr(k), name+" (kept by the child)")
	if err := s.Resume(unit, stream, os.NewFile(uintptr(p[0]), name)); err != nil {
		w.Close()
		keep.Close()
		return nil, nil, err
	}
	return w, keep, nil
}

// Resume drains r, the read end of a log pipe, into unit's log on stream
// until every writer has closed the pipe, as for a pipe made by Pipe. It
// takes r over (closing it on error). The descriptor is made non-blocking
// for the runtime's poller; that flag is shared with every other
// descriptor of the pipe's read end, which only this store reads.
func (s *Store) Resume(unit string, stream Stream, r *os.File) error {
	if err := validStream(stream); err != nil {
		r.Close()
		return err
	}
	u, err := s.unit(unit)
	if err != nil {
		r.Close()
		return err
	}
	fd := int(r.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		r.Close()
		return fmt.Errorf("log pipe for %s: %w", unit, err)
	}
	// A new *os.File for the non-blocking fd, so that it is registered
	// with the poller (and Close interrupts the reader).
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	name := r.Name()
	r.Close()
	if err != nil {
		return fmt.Errorf("log pipe for %s: %w", unit, err)
	}
	rr := os.NewFile(uintptr(nfd), name)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		rr.Close()
		return ErrClosed
	}
	s.pipes[rr] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.drain(u, stream, rr)
	return nil
}
