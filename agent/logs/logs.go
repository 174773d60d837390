// Package logs is Corral's per-unit log store: the stdout and stderr of every
// unit, plus Corral's own messages about it, kept in append-only text files
// under <root>/var/log/corral with size-based rotation.
//
// Each unit has a directory holding "current" and the rotated files
// "current.1" (newest) … "current.<MaxFiles-1>" (oldest). A record is one
// line, `<RFC3339Nano UTC> <stream> <msg>`, so the files stay readable with
// cat and grep when the agent is not running.
//
// Only the store writes these files, so followers are fed from an in-process
// broadcast instead of watching the file system; that is what makes rotation
// invisible to them.
package logs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// ErrClosed is returned by every method once Close has been called.
var ErrClosed = errors.New("log store closed")

const currentFile = "current"

// Options bound the disk space a unit's logs may take: about
// MaxFileSize*MaxFiles bytes.
type Options struct {
	MaxFileSize int64        // rotate once the current file would grow past this; default 8 MiB
	MaxFiles    int          // files kept per unit, including the current one; default 4
	Log         *slog.Logger // for errors nobody else can report (a pipe's writes failing); default slog.Default()
}

// Store is the log store. It is safe for concurrent use.
type Store struct {
	dir  string
	opt  Options
	log  *slog.Logger
	done chan struct{} // closed by Close; ends followers

	mu     sync.Mutex
	closed bool
	units  map[string]*unitLog
	pipes  map[*os.File]struct{} // read ends, closed by Close to end their goroutines
	wg     sync.WaitGroup        // pipe goroutines
}

// unitLog is one unit's files. mu serialises appends so that records never
// interleave, and makes rotation and follower registration atomic with them.
type unitLog struct {
	name string
	dir  string
	log  *slog.Logger

	mu     sync.Mutex
	f      *os.File // nil until the first append
	size   int64
	last   time.Time // timestamp of the last record, to keep them increasing
	buf    []byte
	subs   map[*follower]struct{}
	closed bool
	mirror Mirror // copy of the pipes' lines (CRI container log); nil for none
}

// Open opens (creating it if needed) the store rooted at dir.
func Open(dir string, opt Options) (*Store, error) {
	if opt.MaxFileSize <= 0 {
		opt.MaxFileSize = 8 << 20
	}
	if opt.MaxFiles <= 0 {
		opt.MaxFiles = 4
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("log store %s: %w", dir, err)
	}
	return &Store{
		dir:   dir,
		opt:   opt,
		log:   opt.Log,
		done:  make(chan struct{}),
		units: map[string]*unitLog{},
		pipes: map[*os.File]struct{}{},
	}, nil
}

func (s *Store) unit(name string) (*unitLog, error) {
	d, err := dirName(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	u := s.units[name]
	if u == nil {
		u = &unitLog{name: name, dir: filepath.Join(s.dir, d), log: s.log}
		s.units[name] = u
	}
	return u, nil
}

// Append records one message. A message containing newlines is still one
// record (the newlines are escaped on disk).
func (s *Store) Append(unit string, stream Stream, msg string) error {
	if err := validStream(stream); err != nil {
		return err
	}
	u, err := s.unit(unit)
	if err != nil {
		return err
	}
	return s.append(u, stream, []byte(msg))
}

func (s *Store) append(u *unitLog, stream Stream, msg []byte) error {
	return s.appendLine(u, stream, msg, false, false)
}

// appendLine records msg; a line read from a pipe (fromPipe) also goes to
// the unit's mirror, with partial set when it is a piece of a longer line.
func (s *Store) appendLine(u *unitLog, stream Stream, msg []byte, fromPipe, partial bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return ErrClosed
	}
	if u.f == nil {
		if err := u.open(); err != nil {
			return err
		}
	}
	// Timestamps are taken under the lock so that file order is time order;
	// nudging equal (or barely earlier) clock readings keeps them strictly
	// increasing, which makes Since an exact cursor. A real clock step back
	// is left alone rather than freezing the timestamps until it catches up.
	now := time.Now().UTC().Round(0)
	if !now.After(u.last) && u.last.Sub(now) < time.Second {
		now = u.last.Add(time.Nanosecond)
	}
	u.last = now
	if fromPipe && u.mirror != nil {
		u.mirror.Line(now, stream, msg, partial)
	}
	u.buf = appendRecord(u.buf[:0], now, stream, msg)
	if u.size > 0 && u.size+int64(len(u.buf)) > s.opt.MaxFileSize {
		if err := u.rotate(s.opt.MaxFiles); err != nil {
			return err
		}
	}
	n, err := u.f.Write(u.buf)
	u.size += int64(n)
	if cap(u.buf) > 64<<10 {
		u.buf = nil // do not pin one huge message's buffer forever
	}
	if err != nil {
		return fmt.Errorf("append to log of %s: %w", u.name, err)
	}
	if len(u.subs) > 0 {
		e := Entry{Time: now, Unit: u.name, Stream: stream, Msg: string(msg)}
		for f := range u.subs {
			f.push(e)
		}
	}
	return nil
}

func (u *unitLog) open() error {
	if err := os.MkdirAll(u.dir, 0o755); err != nil {
		return fmt.Errorf("log of %s: %w", u.name, err)
	}
	f, err := os.OpenFile(filepath.Join(u.dir, currentFile), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log of %s: %w", u.name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log of %s: %w", u.name, err)
	}
	u.f, u.size = f, st.Size()
	// A record torn by a crash would swallow the next one; end it so that
	// only the torn record is lost (readers skip it).
	if u.size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, u.size-1); err == nil && last[0] != '\n' {
			n, _ := f.Write([]byte{'\n'})
			u.size += int64(n)
		}
	}
	return nil
}

func rotated(dir string, i int) string {
	return filepath.Join(dir, currentFile+"."+strconv.Itoa(i))
}

// rotate shifts current → current.1 → current.2 …, dropping the oldest, and
// starts a new current file. Called with u.mu held, so no record is written
// while files move and followers (fed from memory) see nothing of it.
func (u *unitLog) rotate(maxFiles int) error {
	if err := u.f.Close(); err != nil {
		u.log.Warn("closing log before rotation", "unit", u.name, "err", err)
	}
	u.f = nil
	cur := filepath.Join(u.dir, currentFile)
	keep := maxFiles - 1
	var err error
	if keep == 0 {
		err = os.Remove(cur)
	} else {
		err = os.Remove(rotated(u.dir, keep))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		for i := keep - 1; i >= 1 && err == nil; i-- {
			err = os.Rename(rotated(u.dir, i), rotated(u.dir, i+1))
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		}
		if err == nil {
			err = os.Rename(cur, rotated(u.dir, 1))
		}
	}
	if err != nil {
		// Keep logging into the oversized file rather than losing records.
		u.log.Error("rotating log failed; appending to the current file", "unit", u.name, "err", err)
	}
	return u.open()
}

// Units lists the units that have a log directory, sorted.
func (s *Store) Units() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("log store %s: %w", s.dir, err)
	}
	var names []string
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		if n, ok := unitName(de.Name()); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Close stops the pipe readers (children still writing get EPIPE), ends
// followers with ErrClosed and closes the files.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for r := range s.pipes {
		r.Close()
	}
	units := s.units
	s.mu.Unlock()
	s.wg.Wait()

	var errs []error
	for _, u := range units {
		u.mu.Lock()
		u.closed = true
		if u.f != nil {
			if err := u.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("log of %s: %w", u.name, err))
			}
			u.f = nil
		}
		u.mu.Unlock()
	}
	return errors.Join(errs...)
}
