// Package state is Corral's state database: what the agent must know again
// after it restarts (unit states, main PIDs with their start times, queued
// jobs, and later pods, containers and backend ID maps). It is a bbolt file
// under <root>/run/corral; every write is committed before it returns, so the
// agent writes state first and acknowledges a change second.
//
// Records are JSON with a version field, one bucket per kind. A corrupt file
// is moved aside and replaced by an empty one (the agent then rebuilds state
// by reconciling with what is actually running); a single undecodable record
// is skipped and reported instead of costing every other record.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is stored in the meta bucket. A file with a newer schema is
// treated like a corrupt one: this agent cannot interpret it.
const SchemaVersion = 1

// Bucket names.
const (
	BucketUnits = "units"
	BucketJobs  = "jobs"
	BucketMeta  = "meta"
)

var keySchema = []byte("schema")

// openTimeout bounds the wait for bbolt's file lock: a second agent on the
// same root must fail with a clear message, not hang.
const openTimeout = 500 * time.Millisecond

// ErrLocked means another process holds the database open.
var ErrLocked = errors.New("state database is locked by another process")

// DB is the state database. It is safe for concurrent use.
type DB struct {
	bolt    *bolt.DB
	path    string
	log     *slog.Logger
	reset   bool
	movedTo string

	commit committer
}

// Open opens the database at path, creating it (and its directory) if
// needed. A file that bbolt refuses, that is shorter than its own meta page
// says, that fails bbolt's consistency check, or that has a newer schema is
// moved aside to path+".corrupt-<unixnano>" (logged as one Error line naming
// both paths) and a fresh database is created; Reset reports that. A file
// locked by another process is an error (ErrLocked), never moved aside.
func Open(path string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	d := &DB{path: path, log: log}
	b, bad, err := openChecked(path)
	if err != nil {
		return nil, err
	}
	if bad != nil {
		d.movedTo = fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
		if err := os.Rename(path, d.movedTo); err != nil {
			return nil, fmt.Errorf("state database %s is corrupt (%v) and could not be moved aside: %w", path, bad, err)
		}
		log.Error("state database is corrupt; moved it aside and starting with an empty one",
			"path", path, "moved_to", d.movedTo, "err", bad)
		d.reset = true
		b, bad, err = openChecked(path)
		if err != nil {
			return nil, err
		}
		if bad != nil {
			return nil, fmt.Errorf("state database %s: fresh database unusable: %w", path, bad)
		}
	}
	d.bolt = b
	d.commit.db = b
	// Report undecodable records once at start; they stay in the file for
	// inspection and are skipped by the readers.
	d.scan()
	return d, nil
}

// Reset reports whether Open found the file corrupt, and where it moved it.
func (d *DB) Reset() (bool, string) { return d.reset, d.movedTo }

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Close closes the file. Writes in progress finish first.
func (d *DB) Close() error {
	if err := d.bolt.Close(); err != nil {
		return fmt.Errorf("state database %s: %w", d.path, err)
	}
	return nil
}

// corruption is why a file must be moved aside.
type corruption struct{ reason string }

func (c *corruption) Error() string { return c.reason }

// openChecked opens and verifies the file. It returns a non-nil corruption
// (and a closed DB) when the file must be moved aside, and an error for
// anything else (permissions, the lock held elsewhere).
//
// A corrupt bbolt file can make bbolt index outside its mapping, which is a
// fault, not a panic; SetPanicOnFault turns that into a panic for this
// goroutine so it can be recovered and treated as corruption instead of
// killing the agent.
func openChecked(path string) (b *bolt.DB, bad *corruption, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if b != nil {
				closeQuietly(b)
			}
			b, bad, err = nil, &corruption{fmt.Sprintf("bbolt panicked reading it: %v", r)}, nil
		}
	}()
	b, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: openTimeout,
		// The file lives on /run, a tmpfs: it must survive a crash of the
		// agent (the kernel keeps the pages of a committed write whether or
		// not we fsync) but not a crash or reboot of the machine, after
		// which every process it describes is gone anyway. fsync on tmpfs
		// buys nothing and costs a syscall per commit.
		NoSync: true,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, nil, fmt.Errorf("state database %s: %w (waited %v)", path, ErrLocked, openTimeout)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, nil, fmt.Errorf("state database %s: %w", path, err)
	}
	if err != nil {
		return nil, &corruption{err.Error()}, nil
	}
	if reason := verify(b, path); reason != "" {
		closeQuietly(b)
		return nil, &corruption{reason}, nil
	}
	if err := initBuckets(b); err != nil {
		closeQuietly(b)
		if errors.Is(err, bolt.ErrIncompatibleValue) { // e.g. "meta" is a key, not a bucket
			return nil, &corruption{"initialising: " + err.Error()}, nil
		}
		return nil, nil, fmt.Errorf("state database %s: initialising: %w", path, err)
	}
	return b, nil, nil
}

func initBuckets(b *bolt.DB) error {
	return b.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{BucketUnits, BucketJobs, BucketMeta} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		m := tx.Bucket([]byte(BucketMeta))
		if m.Get(keySchema) == nil {
			return m.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
		}
		return nil
	})
}

// verify returns why b is unusable, or "".
func verify(b *bolt.DB, path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	var reason string
	err = b.View(func(tx *bolt.Tx) error {
		// A truncated file: the meta page claims pages past its end. Caught
		// first because touching them would fault.
		if tx.Size() > st.Size() {
			reason = fmt.Sprintf("truncated: %d bytes, its meta page says %d", st.Size(), tx.Size())
			return nil
		}
		// Walk every key of every bucket here, in the goroutine that has
		// SetPanicOnFault, before bbolt's Check walks the same pages in a
		// goroutine of its own where a fault could not be recovered.
		var walk func(*bolt.Bucket) error
		walk = func(bk *bolt.Bucket) error {
			return bk.ForEach(func(k, v []byte) error {
				if v == nil {
					if c := bk.Bucket(k); c != nil {
						return walk(c)
					}
				}
				return nil
			})
		}
		if err := tx.ForEach(func(_ []byte, bk *bolt.Bucket) error { return walk(bk) }); err != nil {
			reason = err.Error()
			return nil
		}
		for err := range tx.Check() {
			if reason == "" {
				reason = "consistency check: " + err.Error()
			}
		}
		if reason != "" {
			return nil
		}
		if m := tx.Bucket([]byte(BucketMeta)); m != nil {
			if v := m.Get(keySchema); v != nil {
				n, err := strconv.Atoi(string(v))
				if err != nil || n < 1 || n > SchemaVersion {
					reason = fmt.Sprintf("schema version %q, this agent supports up to %d", v, SchemaVersion)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err.Error()
	}
	return reason
}

func closeQuietly(b *bolt.DB) {
	defer func() { recover() }() //nolint:errcheck // closing a corrupt file; nothing to do about a failure
	b.Close()
}

// committer is group commit: a write that arrives while a commit is running
// joins the next one, so concurrent writers share transactions, and a lone
// write is committed at once. bbolt's own db.Batch gives the sharing but
// waits MaxBatchDelay (10ms by default) before every commit, which would put
// 10ms on every state change the agent acknowledges.
type committer struct {
	db *bolt.DB

	mu      sync.Mutex
	running bool
	pending []*request
}

type request struct {
	fn   func(*bolt.Tx) error
	err  error
	done chan struct{} // closed when err is set
	lead chan struct{} // closed when this request must run the next commit
}

// update runs fn in a committed read-write transaction, possibly shared with
// other callers' functions. fn must only touch the keys it owns.
func (c *committer) update(fn func(*bolt.Tx) error) error {
	r := &request{fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	c.mu.Lock()
	c.pending = append(c.pending, r)
	if c.running {
		c.mu.Unlock()
		select {
		case <-r.done:
			return r.err
		case <-r.lead:
		}
		c.mu.Lock()
	}
	c.running = true
	batch := c.pending
	c.pending = nil
	c.mu.Unlock()

	c.run(batch)

	c.mu.Lock()
	if len(c.pending) > 0 {
		// Hand the next commit to a waiter instead of serving it here, so
		// no caller is kept busy by other callers' writes.
		close(c.pending[0].lead)
	} else {
		c.running = false
	}
	c.mu.Unlock()
	return r.err
}

// run commits batch in one transaction; if any function fails, the whole
// transaction is rolled back and each function gets a transaction of its own
// so one bad write cannot undo the others.
func (c *committer) run(batch []*request) {
	failed := errors.New("a write in the batch failed")
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, r := range batch {
			if r.err = r.fn(tx); r.err != nil {
				return failed
			}
		}
		return nil
	})
	if len(batch) > 1 && err == failed {
		for _, r := range batch {
			r.err = c.db.Update(r.fn)
		}
	} else {
		for _, r := range batch {
			if r.err == nil && err != nil {
				r.err = err
			}
		}
	}
	for _, r := range batch {
		close(r.done)
	}
}

// Put stores v as JSON under key in bucket (created on first use). v should
// carry its own version field. It returns once the write is committed.
func (d *DB) Put(bucket, key string, v any) error {
	if bucket == BucketMeta || bucket == "" || key == "" {
		return fmt.Errorf("state: put %s/%s: invalid bucket or key", bucket, key)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("state: put %s/%s: %w", bucket, key, err)
	}
	return d.putRaw(bucket, key, data)
}

func (d *DB) putRaw(bucket, key string, data []byte) error {
	err := d.commit.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), data)
	})
	if err != nil {
		return fmt.Errorf("state: put %s/%s in %s: %w", bucket, key, d.path, err)
	}
	return nil
}

// Get decodes the record under key into v; false if there is none.
func (d *DB) Get(bucket, key string, v any) (bool, error) {
	data, err := d.getRaw(bucket, key)
	if err != nil || data == nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("state: record %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func (d *DB) getRaw(bucket, key string) ([]byte, error) {
	var data []byte
	err := d.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				data = append([]byte(nil), v...) // bbolt memory is only valid in the tx
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: get %s/%s: %w", bucket, key, err)
	}
	return data, nil
}

// Delete removes key from bucket; a missing key is not an error.
func (d *DB) Delete(bucket, key string) error {
	if bucket == BucketMeta {
		return fmt.Errorf("state: delete %s/%s: the meta bucket is internal", bucket, key)
	}
	err := d.commit.update(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: delete %s/%s in %s: %w", bucket, key, d.path, err)
	}
	return nil
}

// List calls fn with every record of bucket in key order. fn runs outside
// the transaction, so it may write to the database.
func (d *DB) List(bucket string, fn func(key string, data json.RawMessage) error) error {
	type kv struct {
		k string
		v []byte
	}
	var all []kv
	err := d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if v != nil { // nil is a nested bucket
				all = append(all, kv{string(k), append([]byte(nil), v...)})
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("state: list %s: %w", bucket, err)
	}
	for _, e := range all {
		if err := fn(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}
