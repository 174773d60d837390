package logs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxLine is the longest record a pipe produces; longer lines are split so
// that one runaway writer cannot make the store buffer without bound.
const maxLine = 16 << 10

// Pipe returns the write end of a pipe whose lines become records of unit on
// stream, each timestamped when it arrives. Hand it to a child as stdout or
// stderr and close your copy after the spawn; the reader ends when every
// writer has closed it (a last line without a newline is still recorded).
//
// The write end is a plain blocking descriptor: a child that inherited a
// non-blocking stdout would see EAGAIN when the pipe fills. Only the read
// end, which stays in this process, is non-blocking (for Go's poller, so that
// Close can interrupt it).
func (s *Store) Pipe(unit string, stream Stream) (*os.File, error) {
	if err := validStream(stream); err != nil {
		return nil, err
	}
	u, err := s.unit(unit)
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("log pipe for %s: %w", unit, err)
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, fmt.Errorf("log pipe for %s: %w", unit, err)
	}
	r := os.NewFile(uintptr(p[0]), "log pipe "+unit+" "+string(stream))
	w := os.NewFile(uintptr(p[1]), "log pipe "+unit+" "+string(stream))

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		r.Close()
		w.Close()
		return nil, ErrClosed
	}
	s.pipes[r] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.drain(u, stream, r)
	return w, nil
}

// drain copies lines from r into the unit's log until EOF or Close.
func (s *Store) drain(u *unitLog, stream Stream, r *os.File) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.pipes, r)
		s.mu.Unlock()
		r.Close()
	}()
	br := bufio.NewReaderSize(r, maxLine)
	split := false // the previous chunk was a full buffer without newline
	reported := false
	for {
		line, err := br.ReadSlice('\n')
		if err == nil {
			line = line[:len(line)-1]
			if split && len(line) == 0 {
				// The newline ending a line that was exactly maxLine long:
				// the mirror still needs the end of that line.
				split = false
				u.mirrorEnd(stream)
				continue
			}
		}
		split = errors.Is(err, bufio.ErrBufferFull)
		if len(line) > 0 || err == nil {
			if aerr := s.appendLine(u, stream, line, true, split); aerr != nil && !reported && !errors.Is(aerr, ErrClosed) {
				// Once per pipe: a full disk would otherwise log every line.
				s.log.Error("writing unit output to the log store", "unit", u.name, "stream", stream, "err", aerr)
				reported = true
			}
		}
		if err != nil && !split {
			if err != io.EOF && !errors.Is(err, os.ErrClosed) {
				s.log.Error("reading unit output", "unit", u.name, "stream", stream, "err", err)
			}
			return
		}
	}
}
