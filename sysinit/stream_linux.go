package sysinit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ExitRecordsFD is the fd number at which the core finds its exit-record
// stream, named by the --exit-records-fd flag the supervisor adds to its
// argv. Fds 0-2 are stdio; 3 is the first free one.
const ExitRecordsFD = 3

// recordsPerWrite keeps every write at most PIPE_BUF (4096) bytes, which the
// kernel writes atomically: a non-blocking write either carries whole
// records or fails with EAGAIN, so the stream never loses its alignment.
const recordsPerWrite = 4096 / RecordSize

// stream is the write end of the pipe over which the supervisor hands exit
// records to the core it started. When the core starts it receives every
// record of the table (a crashed core may have died before it applied the
// ones it read, and the start time makes a record that matches nothing
// harmless), then each new one as it is reaped. That is how a core learns
// the exit status of a service that is not its child: a service that
// outlived a crashed core was re-parented to the supervisor, which alone can
// wait(2) for it.
//
// Writes never block the supervisor: the pipe is sized for the whole table,
// and a record that does not fit because the core stopped reading is only
// counted (it stays in the table for the next core).
type stream struct {
	fd      int // -1: no stream
	dropped uint64
}

// newStream returns a pipe: the read end for the core (close-on-exec; the
// fork dups it to ExitRecordsFD) and the stream on the write end.
func newStream(capacity int) (read int, s *stream, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return -1, nil, fmt.Errorf("exit-record pipe: %w", err)
	}
	if err := unix.SetNonblock(p[1], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return -1, nil, fmt.Errorf("exit-record pipe: %w", err)
	}
	// Best effort: the default 64 KiB holds 2730 records; a larger table
	// asks for more, up to /proc/sys/fs/pipe-max-size.
	if want := capacity * RecordSize; want > 64<<10 {
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, min(want, 1<<20))
	}
	return p[0], &stream{fd: p[1]}, nil
}

// send writes records, whole ones only; it reports how many did not fit.
func (s *stream) send(recs []Record) int {
	if s == nil || s.fd < 0 {
		return 0
	}
	buf := make([]byte, 0, recordsPerWrite*RecordSize)
	for i := 0; i < len(recs); i += recordsPerWrite {
		chunk := recs[i:min(i+recordsPerWrite, len(recs))]
		buf = buf[:0]
		for _, r := range chunk {
			buf, _ = r.AppendBinary(buf)
		}
		for {
			_, err := unix.Write(s.fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil { // EAGAIN (the core does not read), EPIPE (it is gone)
				n := len(recs) - i
				s.dropped += uint64(n)
				return n
			}
			break
		}
	}
	return 0
}

// close ends the stream; the core reads EOF.
func (s *stream) close() {
	if s != nil && s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}
