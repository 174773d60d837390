package sysinit

import (
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Record is the exit of one process the supervisor reaped while it was not
// the core. It exists so that a restarted core learns how services that ran
// under the crashed core ended: the PID plus StartTime identify the process
// across PID reuse (StartTime is field 22 of /proc/PID/stat, 0 if unknown),
// Status is the raw wait(2) status.
type Record struct {
	PID       int
	StartTime uint64
	Status    unix.WaitStatus
	Time      time.Time
}

// RecordSize is the length of one encoded Record. The encoding is fixed-size
// little-endian so that a stream of records can be handed over a pipe or a
// memfd and read back by a core built from another commit.
const RecordSize = 24

// errShortRecord reports a truncated encoded record.
var errShortRecord = errors.New("sysinit: record shorter than 24 bytes")

// AppendBinary appends the fixed-size encoding of r:
// pid int32 | status uint32 | start uint64 | time unix-nanoseconds int64.
func (r Record) AppendBinary(b []byte) ([]byte, error) {
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(r.PID)))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Status))
	b = binary.LittleEndian.AppendUint64(b, r.StartTime)
	var ns int64
	if !r.Time.IsZero() {
		ns = r.Time.UnixNano()
	}
	return binary.LittleEndian.AppendUint64(b, uint64(ns)), nil
}

// MarshalBinary returns the RecordSize-byte encoding of r.
func (r Record) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, RecordSize))
}

// UnmarshalBinary decodes the first RecordSize bytes of b.
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) < RecordSize {
		return errShortRecord
	}
	r.PID = int(int32(binary.LittleEndian.Uint32(b[0:])))
	r.Status = unix.WaitStatus(binary.LittleEndian.Uint32(b[4:]))
	r.StartTime = binary.LittleEndian.Uint64(b[8:])
	r.Time = time.Time{}
	if ns := int64(binary.LittleEndian.Uint64(b[16:])); ns != 0 {
		r.Time = time.Unix(0, ns)
	}
	return nil
}

// Describe renders the status the way systemd prints it ("status=1",
// "signal=KILL"), for logs.
func Describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return "status=" + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		name := unix.SignalName(ws.Signal())
		if len(name) > 3 && name[:3] == "SIG" {
			name = name[3:]
		}
		if name == "" {
			name = strconv.Itoa(int(ws.Signal()))
		}
		if ws.CoreDump() {
			name += " (core dumped)"
		}
		return "signal=" + name
	}
	return "wait-status=" + strconv.FormatUint(uint64(ws), 10)
}

// Table keeps the most recent Records in a ring. It is bounded because the
// supervisor must not grow without limit while no core is there to collect
// the records; when full, the oldest record is overwritten and counted in
// Dropped so that the next core knows its picture is incomplete.
type Table struct {
	mu      sync.Mutex
	recs    []Record
	next    int
	full    bool
	dropped uint64
}

// NewTable returns a table holding at most n records (n < 1 means 1).
func NewTable(n int) *Table {
	if n < 1 {
		n = 1
	}
	return &Table{recs: make([]Record, n)}
}

// Add stores r, overwriting the oldest record when the table is full.
func (t *Table) Add(r Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.full {
		t.dropped++
	}
	t.recs[t.next] = r
	t.next++
	if t.next == len(t.recs) {
		t.next = 0
		t.full = true
	}
}

// Records returns the stored records, oldest first.
func (t *Table) Records() []Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]Record(nil), t.recs[:t.next]...)
	}
	out := make([]Record, 0, len(t.recs))
	out = append(out, t.recs[t.next:]...)
	return append(out, t.recs[:t.next]...)
}

// Dropped is how many records were overwritten before anyone read them.
func (t *Table) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}
