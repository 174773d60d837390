package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Mirror receives a copy of every line a unit's pipes produce, with the
// store's timestamp, as the line is recorded. It is how a CRI container's
// output reaches the file kubelet reads while `corralctl logs` still shows
// it. Line runs under the unit's log lock: it must not call back into the
// store.
type Mirror interface {
	// Line is one line without its newline; partial means it is a piece
	// of a longer line whose rest follows (the pipe reader's line limit).
	Line(t time.Time, stream Stream, line []byte, partial bool)
}

// SetMirror makes m receive the lines of unit's pipes from now on; nil stops
// mirroring. Corral's own records (stream "core") are never mirrored.
func (s *Store) SetMirror(unit string, m Mirror) error {
	u, err := s.unit(unit)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.mirror = m
	u.mu.Unlock()
	return nil
}

// mirrorEnd ends, in the mirror, a line whose pieces were all recorded.
func (u *unitLog) mirrorEnd(stream Stream) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.mirror != nil {
		u.mirror.Line(time.Now().UTC(), stream, nil, false)
	}
}

// CRIFile writes a container log in the format kubelet reads (CRI logging
// format): `<RFC3339Nano> <stdout|stderr> <P|F> <msg>\n`, P for a piece of
// a line that continues in the next record, F for the (final piece of a)
// full line.
type CRIFile struct {
	path string

	mu  sync.Mutex
	f   *os.File
	buf []byte
	err error // the last write error, reported once by Err
}

var _ Mirror = (*CRIFile)(nil)

// OpenCRIFile opens path for appending, creating it and its directory.
func OpenCRIFile(path string) (*CRIFile, error) {
	c := &CRIFile{path: path}
	f, err := c.open()
	if err != nil {
		return nil, err
	}
	c.f = f
	return c, nil
}

func (c *CRIFile) open() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		return nil, fmt.Errorf("container log %s: %w", c.path, err)
	}
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("container log %s: %w", c.path, err)
	}
	return f, nil
}

// Path is the file written.
func (c *CRIFile) Path() string { return c.path }

// Line writes one record. A write error is kept for Err rather than
// returned: the pipe reader has nobody to return it to.
func (c *CRIFile) Line(t time.Time, stream Stream, line []byte, partial bool) {
	tag := byte('F')
	if partial {
		tag = 'P'
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return
	}
	b := t.UTC().AppendFormat(c.buf[:0], time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, line...)
	b = append(b, '\n')
	if _, err := c.f.Write(b); err != nil {
		c.err = fmt.Errorf("container log %s: %w", c.path, err)
	}
	if cap(b) <= 64<<10 {
		c.buf = b
	}
}

// Reopen closes the file and opens path again, for ReopenContainerLog after
// kubelet renamed the file to rotate it.
func (c *CRIFile) Reopen() error {
	f, err := c.open()
	if err != nil {
		return err
	}
	c.mu.Lock()
	old := c.f
	c.f = f
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Err returns (and clears) the last write error.
func (c *CRIFile) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.err
	c.err = nil
	return err
}

// Close closes the file; later lines are dropped.
func (c *CRIFile) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}
