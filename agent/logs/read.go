package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Query selects entries: the last N (0 = all) at or after Since (zero = no
// limit), and with Follow, every later entry until ctx is done.
type Query struct {
	N      int
	Since  time.Time
	Follow bool
}

// maxQueue bounds what a slow follower may hold in memory; past it entries
// are dropped for that follower only and it is told how many.
const maxQueue = 64 << 10

// follower receives entries appended after it registered.
type follower struct {
	mu      sync.Mutex
	q       []Entry
	dropped int
	wake    chan struct{} // cap 1
}

func (f *follower) push(e Entry) {
	f.mu.Lock()
	if len(f.q) >= maxQueue {
		f.dropped++
	} else {
		f.q = append(f.q, e)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *follower) take() ([]Entry, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q, d := f.q, f.dropped
	f.q, f.dropped = nil, 0
	return q, d
}

// snapshot is a unit's files as they were at one instant: open handles (so
// a later rotation's renames do not matter) and the size to read up to.
type snapshot struct {
	files []*os.File
	sizes []int64
}

func (sn *snapshot) close() {
	for _, f := range sn.files {
		f.Close()
	}
}

// Read calls fn for the selected entries of unit, oldest first. A unit that
// has never logged has no entries; that is not an error. With q.Follow, Read
// returns nil when ctx is done, and ErrClosed when the store is closed. An
// error from fn stops the read and is returned.
//
// The files are opened and the follower is registered under the unit's
// append lock, so the history read from the files and the entries broadcast
// afterwards meet exactly: nothing lost, nothing twice, whatever rotation
// happens meanwhile.
func (s *Store) Read(ctx context.Context, unit string, q Query, fn func(Entry) error) error {
	u, err := s.unit(unit)
	if err != nil {
		return err
	}
	var fol *follower
	u.mu.Lock()
	sn, err := u.snapshot(s.opt.MaxFiles)
	if err == nil && q.Follow && !u.closed {
		fol = &follower{wake: make(chan struct{}, 1)}
		if u.subs == nil {
			u.subs = map[*follower]struct{}{}
		}
		u.subs[fol] = struct{}{}
	}
	u.mu.Unlock()
	if err != nil {
		return err
	}
	if fol != nil {
		defer func() {
			u.mu.Lock()
			delete(u.subs, fol)
			u.mu.Unlock()
		}()
	}

	err = readHistory(ctx, unit, sn, q, fn)
	sn.close()
	if err != nil || !q.Follow {
		return err
	}
	if fol == nil {
		return ErrClosed
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return ErrClosed
		case <-fol.wake:
		}
		es, dropped := fol.take()
		for _, e := range es {
			if e.Time.Before(q.Since) {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if dropped > 0 {
			e := Entry{Time: time.Now().UTC(), Unit: unit, Stream: Core,
				Msg: fmt.Sprintf("corral: %d log entries were not shown because this reader fell behind", dropped)}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// snapshot opens the unit's files, oldest first. Called with u.mu held.
func (u *unitLog) snapshot(maxFiles int) (*snapshot, error) {
	sn := &snapshot{}
	names := make([]string, 0, maxFiles)
	for i := maxFiles - 1; i >= 1; i-- {
		names = append(names, rotated(u.dir, i))
	}
	names = append(names, filepath.Join(u.dir, currentFile))
	for _, n := range names {
		f, err := os.Open(n)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			var st os.FileInfo
			if st, err = f.Stat(); err == nil {
				sn.files = append(sn.files, f)
				sn.sizes = append(sn.sizes, st.Size())
				continue
			}
			f.Close()
		}
		sn.close()
		return nil, fmt.Errorf("reading log of %s: %w", u.name, err)
	}
	return sn, nil
}

// readHistory delivers the selected entries from the snapshot. Lines that do
// not parse (a record cut short by a crash) are skipped.
func readHistory(ctx context.Context, unit string, sn *snapshot, q Query, fn func(Entry) error) error {
	var ring []Entry // the last q.N entries when q.N > 0
	next := 0
	for i, f := range sn.files {
		br := bufio.NewReaderSize(io.LimitReader(f, sn.sizes[i]), 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				if err := ctx.Err(); err != nil {
					return err
				}
				t, stream, msg, perr := parseRecord(line[:len(line)-1])
				if perr == nil && !t.Before(q.Since) {
					e := Entry{Time: t, Unit: unit, Stream: stream, Msg: msg}
					switch {
					case q.N <= 0:
						if err := fn(e); err != nil {
							return err
						}
					case len(ring) < q.N:
						ring = append(ring, e)
					default:
						ring[next] = e
						next = (next + 1) % q.N
					}
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("reading log of %s: %w", unit, err)
			}
		}
	}
	for i := range ring {
		if err := fn(ring[(next+i)%len(ring)]); err != nil {
			return err
		}
	}
	return nil
}
