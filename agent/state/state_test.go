package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuf captures slog output so tests can check what was reported.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, nil)), lb
}

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "run", "corral", "state.db")
}

func openDB(t testing.TB, path string, log *slog.Logger) *DB {
	t.Helper()
	d, err := Open(path, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func sampleUnit(name string, i int) UnitRecord {
	return UnitRecord{
		Name: name, ActiveState: "active", SubState: "running", Result: "success",
		MainPID: 1000 + i, MainPIDStart: uint64(123456 + i), ControlPID: 0, Cgroup: "/system.slice/" + name,
		InvocationID: fmt.Sprintf("%032x", i), ExecMainCode: 1, ExecMainStatus: i % 256, NRestarts: i,
		StateChange: time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC), StatusText: "ready\nwith \"quotes\"",
	}
}

func TestRoundTrip(t *testing.T) {
	path := dbPath(t)
	log, lb := newLog()
	d, err := Open(path, log)
	if err != nil {
		t.Fatal(err)
	}
	if reset, _ := d.Reset(); reset {
		t.Error("a new database reported a reset")
	}
	var want []UnitRecord
	for i, n := range []string{"a.service", "b.socket", "getty@tty1.service"} {
		r := sampleUnit(n, i)
		if err := d.PutUnit(r); err != nil {
			t.Fatal(err)
		}
		r.Version = UnitRecordVersion
		want = append(want, r)
	}
	jobs := []JobRecord{
		{ID: 2, Unit: "a.service", Type: "start", Mode: "replace", State: "waiting", Created: time.Unix(5, 0).UTC()},
		{ID: 300, Unit: "b.socket", Type: "stop", Mode: "fail", State: "running", Created: time.Unix(6, 0).UTC()},
	}
	for _, j := range jobs {
		if err := d.PutJob(j); err != nil {
			t.Fatal(err)
		}
	}
	type pod struct {
		ID      string
		Version int
	}
	if err := d.Put("pods", "p1", pod{"p1", 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(BucketMeta, "x", 1); err == nil {
		t.Error("Put into the meta bucket was accepted")
	}
	d.Close()

	// Everything survives a reopen (a restart of the agent).
	d = openDB(t, path, log)
	got, err := d.Units()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Units (-want +got):\n%s", diff)
	}
	u, ok, err := d.Unit("b.socket")
	if err != nil || !ok || !cmp.Equal(u, want[1]) {
		t.Errorf("Unit(b.socket) = %+v, %v, %v", u, ok, err)
	}
	if _, ok, err := d.Unit("missing.service"); ok || err != nil {
		t.Errorf("Unit(missing) = %v, %v", ok, err)
	}
	for i := range jobs {
		jobs[i].Version = JobRecordVersion
	}
	gj, err := d.Jobs()
	if err != nil || !cmp.Equal(jobs, gj) {
		t.Errorf("Jobs() = %+v, %v; want %+v", gj, err, jobs)
	}
	var p pod
	if ok, err := d.Get("pods", "p1", &p); !ok || err != nil || p != (pod{"p1", 1}) {
		t.Errorf("Get(pods/p1) = %+v, %v, %v", p, ok, err)
	}
	if ok, err := d.Get("nobucket", "x", &p); ok || err != nil {
		t.Errorf("Get from a missing bucket = %v, %v", ok, err)
	}

	if err := d.DeleteUnit("a.service"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUnit("a.service"); err != nil {
		t.Errorf("deleting a missing unit: %v", err)
	}
	if err := d.DeleteJob(2); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete("pods", "p1"); err != nil {
		t.Fatal(err)
	}
	got, _ = d.Units()
	gj, _ = d.Jobs()
	if len(got) != 2 || got[0].Name != "b.socket" || len(gj) != 1 || gj[0].ID != 300 {
		t.Errorf("after deletes: units %v, jobs %v", got, gj)
	}
	var keys []string
	d.List("pods", func(k string, _ json.RawMessage) error { keys = append(keys, k); return nil })
	if len(keys) != 0 {
		t.Errorf("pods after delete: %v", keys)
	}
	if strings.Contains(lb.String(), "level=ERROR") {
		t.Errorf("unexpected errors logged:\n%s", lb)
	}
}

func TestLockedByAnotherOpener(t *testing.T) {
	path := dbPath(t)
	openDB(t, path, nil)
	start := time.Now()
	d2, err := Open(path, nil)
	if err == nil {
		d2.Close()
		t.Fatal("second Open of a locked database succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should be ErrLocked and name %s", err, path)
	}
	if time.Since(start) > time.Minute {
		t.Errorf("Open waited %v for the lock", time.Since(start))
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("a locked database was moved aside: %v", m)
	}
}

// fill writes n unit records and returns the file's contents afterwards.
func fill(t *testing.T, path string, n int) {
	t.Helper()
	d, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := d.PutUnit(sampleUnit(fmt.Sprintf("u%04d.service", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkReset asserts the file was moved aside with one Error line naming
// both paths, and that the fresh database works.
func checkReset(t *testing.T, d *DB, path string, lb *logBuf) {
	t.Helper()
	reset, moved := d.Reset()
	if !reset || !strings.HasPrefix(moved, path+".corrupt-") {
		t.Fatalf("Reset() = %v, %q; want a move to %s.corrupt-*", reset, moved, path)
	}
	if _, err := os.Stat(moved); err != nil {
		t.Errorf("moved-aside file: %v", err)
	}
	var errLines []string
	for _, l := range strings.Split(lb.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], path) || !strings.Contains(errLines[0], moved) {
		t.Errorf("want one Error line naming %s and %s, got:\n%s", path, moved, lb)
	}
	if us, err := d.Units(); err != nil || len(us) != 0 {
		t.Errorf("fresh database has units %v, %v", us, err)
	}
	if err := d.PutUnit(sampleUnit("new.service", 1)); err != nil {
		t.Errorf("fresh database: %v", err)
	}
}

func TestCorruptFileIsMovedAside(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, path string)
	}{
		{"truncated to a few bytes", func(t *testing.T, path string) { os.Truncate(path, 100) }},
		{"truncated to half", func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			os.Truncate(path, st.Size()/2)
		}},
		{"not a bbolt file", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 4096), 0o600)
		}},
		{"both meta pages overwritten", func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			f.WriteAt(bytes.Repeat([]byte{0xa5}, 2*4096), 0)
			f.Close()
		}},
		{"newer schema", func(t *testing.T, path string) {
			b, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(BucketMeta)).Put(keySchema, []byte("99")) })
			b.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := dbPath(t)
			fill(t, path, 300)
			tc.break_(t, path)
			log, lb := newLog()
			d := openDB(t, path, log)
			checkReset(t, d, path, lb)
		})
	}
}

// TestRandomPageOverwrite damages random data pages. Whatever bbolt makes of
// them, Open must not crash or fail: either the file is moved aside, or the
// records that still decode are returned (and the rest skipped).
func TestRandomPageOverwrite(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			path := dbPath(t)
			fill(t, path, 400)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(seed, 7))
			const page = 4096
			pages := st.Size() / page
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			for range 1 + rng.IntN(3) {
				buf := make([]byte, page)
				for i := range buf {
					buf[i] = byte(rng.Uint32())
				}
				if seed%2 == 0 { // keep the page header, damage the contents
					off := 2 + rng.Int64N(pages-2)
					f.WriteAt(buf[16+rng.IntN(100):], off*page+16)
				} else {
					f.WriteAt(buf, rng.Int64N(pages)*page)
				}
			}
			f.Close()

			log, lb := newLog()
			d := openDB(t, path, log)
			if reset, _ := d.Reset(); reset {
				t.Logf("moved aside: %s", lb)
				checkReset(t, d, path, lb)
				return
			}
			us, err := d.Units()
			if err != nil {
				t.Fatalf("Units on a damaged but accepted file: %v", err)
			}
			t.Logf("accepted: %d of 400 records decode", len(us))
			for _, u := range us {
				if u.Version != UnitRecordVersion || !strings.HasSuffix(u.Name, ".service") {
					t.Errorf("a record that should have been rejected came through: %+v", u)
				}
			}
			if err := d.PutUnit(sampleUnit("after.service", 1)); err != nil {
				t.Errorf("writing to an accepted file: %v", err)
			}
		})
	}
}

func TestBadRecordIsSkipped(t *testing.T) {
	path := dbPath(t)
	fill(t, path, 5)
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error {
		u := tx.Bucket([]byte(BucketUnits))
		u.Put([]byte("u0002.service"), []byte(`{"Name":"u0002.service",`))             // torn JSON
		u.Put([]byte("other.service"), []byte(`{"Name":"u0001.service","Version":1}`)) // wrong key
		u.Put([]byte("future.service"), []byte(`{"Name":"future.service","Version":9}`))
		return nil
	})
	b.Close()

	log, lb := newLog()
	d := openDB(t, path, log)
	if reset, _ := d.Reset(); reset {
		t.Fatal("one bad record reset the whole database")
	}
	us, err := d.Units()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
	}
	if diff := cmp.Diff([]string{"u0000.service", "u0001.service", "u0003.service", "u0004.service"}, names); diff != "" {
		t.Errorf("good records (-want +got):\n%s", diff)
	}
	for _, k := range []string{"u0002.service", "other.service", "future.service"} {
		if !strings.Contains(lb.String(), "key="+k) {
			t.Errorf("bad record %s not reported:\n%s", k, lb)
		}
	}
	if _, _, err := d.Unit("u0002.service"); err == nil || !strings.Contains(err.Error(), "u0002.service") {
		t.Errorf("Unit of a bad record: %v", err)
	}
	// Overwriting the bad record repairs it.
	if err := d.PutUnit(sampleUnit("u0002.service", 2)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.Unit("u0002.service"); !ok || err != nil {
		t.Errorf("after rewrite: %v, %v", ok, err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	path := dbPath(t)
	d := openDB(t, path, nil)
	const writers, per = 16, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				r := sampleUnit(fmt.Sprintf("w%02d-%03d.service", w, i), i)
				if err := d.PutUnit(r); err != nil {
					t.Error(err)
					return
				}
				// Committed when PutUnit returns: visible at once.
				if _, ok, err := d.Unit(r.Name); !ok || err != nil {
					t.Errorf("%s not readable right after PutUnit: %v, %v", r.Name, ok, err)
				}
				if i%10 == 0 {
					if err := d.DeleteUnit(r.Name); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	d.Close()
	d = openDB(t, path, nil)
	us, err := d.Units()
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != writers*(per-per/10) {
		t.Errorf("got %d records, want %d", len(us), writers*(per-per/10))
	}
}

// TestFailedWriteDoesNotUndoOthers checks the group commit's fallback: a
// write that fails inside a shared transaction must not roll back the
// others sharing it.
func TestFailedWriteDoesNotUndoOthers(t *testing.T) {
	d := openDB(t, dbPath(t), nil)
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				errs[i] = d.Put("units", strings.Repeat("k", bolt.MaxKeySize+1), 1) // bbolt rejects the key
				return
			}
			errs[i] = d.PutUnit(sampleUnit(fmt.Sprintf("ok%02d.service", i), i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%4 == 0) != (err != nil) {
			t.Errorf("write %d: err = %v", i, err)
		}
	}
	if us, _ := d.Units(); len(us) != 30 {
		t.Errorf("got %d good records, want 30", len(us))
	}
}

func FuzzDecodeUnitRecord(f *testing.F) {
	good, _ := json.Marshal(UnitRecord{Name: "a.service", Version: 1, MainPID: 5, StateChange: time.Unix(1, 2)})
	for _, s := range [][]byte{good, []byte("{}"), []byte("null"), []byte(`{"Name":"a.service","Version":1,"StateChange":"x"}`), []byte(`{"Name":"a.service","Version":1,"MainPID":1e99}`), good[:len(good)/2]} {
		f.Add("a.service", s)
	}
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		r, err := decodeUnit(key, data)
		if err != nil {
			return
		}
		if r.Name != key || r.Version != UnitRecordVersion {
			t.Fatalf("accepted %q for key %q: %+v", data, key, r)
		}
		// What decodes re-encodes to an equivalent record.
		again, _ := json.Marshal(r)
		r2, err := decodeUnit(key, again)
		if err != nil || !cmp.Equal(r, r2) {
			t.Fatalf("re-decode of %s: %+v, %v", again, r2, err)
		}
	})
}

func BenchmarkPutUnit(b *testing.B) {
	d := openDB(b, dbPath(b), nil)
	r := sampleUnit("bench.service", 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.NRestarts = i
		i++
		if err := d.PutUnit(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutUnitParallel shows what group commit buys concurrent writers.
func BenchmarkPutUnitParallel(b *testing.B) {
	d := openDB(b, dbPath(b), nil)
	var n sync.Mutex
	id := 0
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		n.Lock()
		id++
		r := sampleUnit(fmt.Sprintf("bench%d.service", id), id)
		n.Unlock()
		for pb.Next() {
			r.NRestarts++
			if err := d.PutUnit(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
