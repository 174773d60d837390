package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openStore(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "var", "log", "corral"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func readAll(t testing.TB, s *Store, unit string, q Query) []Entry {
	t.Helper()
	var es []Entry
	if err := s.Read(context.Background(), unit, q, func(e Entry) error { es = append(es, e); return nil }); err != nil {
		t.Fatalf("Read(%s): %v", unit, err)
	}
	return es
}

func msgs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Stream) + ":" + e.Msg
	}
	return out
}

// waitEntries polls until unit has want entries; pipe readers run
// asynchronously and there is no event to wait on from outside.
func waitEntries(t *testing.T, s *Store, unit string, want int) []Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		es := readAll(t, s, unit, Query{})
		if len(es) >= want || time.Now().After(deadline) {
			return es
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, msg := range []string{"", "plain", "two\nlines", `back\slash`, `literal \n text`, "cr\r\n", "trailing\\", "\\\\n", "tab\tand ünïcode", "\x00nul"} {
		ts := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
		b := appendRecord(nil, ts, Stderr, []byte(msg))
		if strings.Count(string(b), "\n") != 1 || b[len(b)-1] != '\n' {
			t.Errorf("record for %q is not one line: %q", msg, b)
		}
		gt, gs, gm, err := parseRecord(b[:len(b)-1])
		if err != nil || !gt.Equal(ts) || gs != Stderr || gm != msg {
			t.Errorf("round trip of %q: got (%v, %q, %q, %v)", msg, gt, gs, gm, err)
		}
	}
	if got := string(appendRecord(nil, time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Stdout, []byte("a\nb"))); got != "2025-01-02T02:04:05Z stdout a\\nb\n" {
		t.Errorf("format: got %q", got)
	}
	for _, bad := range []string{"", "nospace", "notatime stdout x", "2025-01-02T02:04:05Z", "2025-01-02T02:04:05Z stdout"} {
		if _, _, _, err := parseRecord([]byte(bad)); err == nil {
			t.Errorf("parseRecord(%q) accepted a malformed record", bad)
		}
	}
}

func TestDirName(t *testing.T) {
	for _, tc := range []struct {
		unit, dir string
		ok        bool
	}{
		{"foo.service", "foo.service", true},
		{`getty@tty1.service`, `getty@tty1.service`, true},
		{`systemd-fsck@dev-disk-by\x2duuid.service`, `systemd-fsck@dev-disk-by\x2duuid.service`, true},
		{"a b%.service", "a%20b%25.service", true},
		{"", "", false},
		{".", "", false},
		{"..", "", false},
		{"../etc", "", false},
		{"a/b.service", "", false},
		{"foo..service", "", false},
		{strings.Repeat("x", 300), "", false},
	} {
		d, err := dirName(tc.unit)
		if (err == nil) != tc.ok || d != tc.dir {
			t.Errorf("dirName(%q) = %q, %v; want %q, ok=%v", tc.unit, d, err, tc.dir, tc.ok)
		}
		if tc.ok {
			if n, ok := unitName(d); !ok || n != tc.unit {
				t.Errorf("unitName(%q) = %q, %v; want %q", d, n, ok, tc.unit)
			}
		}
	}
	for _, d := range []string{"lost+found%", "%zz", "a%2fb", ".."} {
		if n, ok := unitName(d); ok {
			t.Errorf("unitName(%q) accepted a directory we never create: %q", d, n)
		}
	}
}

func TestBadUnitNames(t *testing.T) {
	s := openStore(t, Options{})
	for _, name := range []string{"", ".", "..", "../escape.service", "a/b.service", "x..service"} {
		if err := s.Append(name, Stdout, "x"); err == nil {
			t.Errorf("Append(%q) accepted a bad unit name", name)
		}
		if w, err := s.Pipe(name, Stdout); err == nil {
			w.Close()
			t.Errorf("Pipe(%q) accepted a bad unit name", name)
		}
		if err := s.Read(context.Background(), name, Query{}, func(Entry) error { return nil }); err == nil {
			t.Errorf("Read(%q) accepted a bad unit name", name)
		}
	}
	if err := s.Append("ok.service", "bad stream", "x"); err == nil {
		t.Error("Append accepted a stream with a space")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.dir), "escape.service")); err == nil {
		t.Error("a bad unit name created a directory outside the store")
	}
	if units, err := s.Units(); err != nil || len(units) != 0 {
		t.Errorf("Units() = %v, %v; want none", units, err)
	}
}

func TestPipeChildProcess(t *testing.T) {
	s := openStore(t, Options{})
	out, err := s.Pipe("child.service", Stdout)
	if err != nil {
		t.Fatal(err)
	}
	errw, err := s.Pipe("child.service", Stderr)
	if err != nil {
		t.Fatal(err)
	}
	// The write end handed to the child must be blocking.
	rc, _ := out.SyscallConn()
	rc.Control(func(fd uintptr) {
		if fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
			t.Errorf("write end flags %#x, %v: want blocking", fl, err)
		}
	})
	cmd := exec.Command("/bin/sh", "-c", `echo one; echo 'two\ back' >&2; sleep 0.05; echo three; printf 'no newline'`)
	cmd.Stdout, cmd.Stderr = out, errw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	errw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	es := waitEntries(t, s, "child.service", 4)
	// The two pipes race each other, so compare each stream's order.
	var got []string
	for _, e := range es {
		if e.Stream == Stdout {
			got = append(got, e.Msg)
		}
	}
	for _, e := range es {
		if e.Stream == Stderr {
			got = append(got, e.Msg)
		}
	}
	want := []string{"one", "three", "no newline", `two\ back`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	for i := 1; i < len(es); i++ {
		if !es[i].Time.After(es[i-1].Time) || es[i].Unit != "child.service" {
			t.Errorf("entry %d: %+v not after %+v", i, es[i], es[i-1])
		}
	}
}

func TestPipeLongLines(t *testing.T) {
	s := openStore(t, Options{})
	w, err := s.Pipe("long.service", Stdout)
	if err != nil {
		t.Fatal(err)
	}
	// 40000 bytes → 16384 + 16384 + 7232; exactly maxLine → one record, no
	// empty record for its newline; then a short line.
	cmd := exec.Command("/bin/sh", "-c", `head -c 40000 /dev/zero | tr '\0' a; echo; head -c 16384 /dev/zero | tr '\0' b; echo; echo short`)
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	es := waitEntries(t, s, "long.service", 5)
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%c*%d", e.Msg[0], len(e.Msg)))
	}
	want := []string{"a*16384", "a*16384", "a*7232", "b*16384", "s*5"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestRotation(t *testing.T) {
	s := openStore(t, Options{MaxFileSize: 1000, MaxFiles: 3})
	var want []string
	for i := range 200 {
		m := fmt.Sprintf("message %03d", i)
		want = append(want, "stdout:"+m)
		if err := s.Append("rot.service", Stdout, m); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(s.dir, "rot.service")
	for _, name := range []string{"current", "current.1", "current.2"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1000 || st.Size() < 500 {
			t.Errorf("%s has %d bytes; want close to but not above 1000", name, st.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "current.3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("current.3 should not exist with MaxFiles=3: %v", err)
	}
	got := msgs(readAll(t, s, "rot.service", Query{}))
	if len(got) < 60 || len(got) > 100 {
		t.Fatalf("got %d entries after rotation, want the ~3000 bytes' worth", len(got))
	}
	if diff := cmp.Diff(want[len(want)-len(got):], got); diff != "" {
		t.Errorf("surviving entries are not the newest, in order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[len(want)-7:], msgs(readAll(t, s, "rot.service", Query{N: 7}))); diff != "" {
		t.Errorf("last 7 across files (-want +got):\n%s", diff)
	}

	// A reopened store continues the same files.
	s.Close()
	s2, err := Open(s.dir, Options{MaxFileSize: 1000, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Append("rot.service", Core, "after reopen"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append(want[len(want)-2:], "core:after reopen"), msgs(readAll(t, s2, "rot.service", Query{N: 3}))); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	s := openStore(t, Options{MaxFileSize: 2000, MaxFiles: 2})
	var want []string
	add := func(i int) {
		m := fmt.Sprintf("m%04d", i)
		want = append(want, m)
		if err := s.Append("f.service", Stdout, m); err != nil {
			t.Error(err)
		}
	}
	for i := range 10 {
		add(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const total = 3000
	var got []string
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- s.Read(ctx, "f.service", Query{Follow: true}, func(e Entry) error {
			got = append(got, e.Msg)
			if len(got) == 10 {
				close(started)
			}
			if len(got) == total {
				cancel()
			}
			return nil
		})
	}()
	<-started
	for i := 10; i < total; i++ {
		add(i)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		t.Fatalf("follower got %d of %d entries", len(got), total)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("followed entries (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "f.service", "current.1")); err != nil {
		t.Errorf("the test did not rotate: %v", err)
	}
}

// TestFollowRaceWithWriters starts followers while writers run and rotate,
// so the snapshot/registration hand-over is exercised under contention.
func TestFollowRaceWithWriters(t *testing.T) {
	s := openStore(t, Options{MaxFileSize: 1 << 20, MaxFiles: 2})
	const total = 2000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if i == total/2 {
				close(stop)
			}
			if err := s.Append("r.service", Stdout, fmt.Sprint(i)); err != nil {
				t.Error(err)
			}
		}
	}()
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	err := s.Read(ctx, "r.service", Query{Follow: true}, func(e Entry) error {
		got = append(got, e.Msg)
		if len(got) == total {
			cancel()
		}
		return nil
	})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got {
		if m != fmt.Sprint(i) {
			t.Fatalf("entry %d is %q (lost or duplicated around the hand-over); got %d entries", i, m, len(got))
		}
	}
	if len(got) != total {
		t.Fatalf("got %d entries, want %d", len(got), total)
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := openStore(t, Options{})
	const writers, per = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				m := fmt.Sprintf("w%d %d %s\nend", w, i, strings.Repeat("x", (w*131+i*17)%5000))
				if err := s.Append("c.service", Stdout, m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	es := readAll(t, s, "c.service", Query{})
	if len(es) != writers*per {
		t.Fatalf("got %d entries, want %d", len(es), writers*per)
	}
	next := make([]int, writers)
	for _, e := range es {
		var w, i int
		if _, err := fmt.Sscanf(e.Msg, "w%d %d", &w, &i); err != nil {
			t.Fatalf("interleaved or corrupt record %q", e.Msg)
		}
		want := fmt.Sprintf("w%d %d %s\nend", w, i, strings.Repeat("x", (w*131+i*17)%5000))
		if e.Msg != want || i != next[w] {
			t.Fatalf("writer %d: got record %d (%d bytes), want record %d", w, i, len(e.Msg), next[w])
		}
		next[w]++
	}
}

func TestSinceAndN(t *testing.T) {
	s := openStore(t, Options{})
	for i := range 10 {
		if err := s.Append("s.service", Stdout, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	all := readAll(t, s, "s.service", Query{})
	since := all[4].Time
	for _, tc := range []struct {
		name string
		q    Query
		want []string
	}{
		{"all", Query{}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"last 3", Query{N: 3}, []string{"7", "8", "9"}},
		{"N larger than the log", Query{N: 50}, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"since", Query{Since: since}, []string{"4", "5", "6", "7", "8", "9"}},
		{"since and N", Query{Since: since, N: 2}, []string{"8", "9"}},
		{"since in the future", Query{Since: time.Now().Add(time.Hour)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range readAll(t, s, "s.service", tc.q) {
				got = append(got, e.Msg)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if es := readAll(t, s, "never-logged.service", Query{}); len(es) != 0 {
		t.Errorf("unknown unit: got %v", es)
	}
}

func TestUnitsAndCorruptLines(t *testing.T) {
	s := openStore(t, Options{})
	for _, u := range []string{"b.service", "a b.service", `x\x2dy.service`} {
		if err := s.Append(u, Core, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(s.dir, "%zz"), 0o755) // not ours: ignored
	units, err := s.Units()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a b.service", "b.service", `x\x2dy.service`}, units); diff != "" {
		t.Errorf("Units (-want +got):\n%s", diff)
	}
	// A torn record (crash mid-write) and garbage are skipped, not fatal.
	f, err := os.OpenFile(filepath.Join(s.dir, "b.service", "current"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("garbage line\n2025-01-01T00:00:00Z std")
	f.Close()
	s.Close()
	s, err = Open(s.dir, Options{}) // a fresh store, as after an agent crash
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append("b.service", Core, "after"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"core:hello", "core:after"}, msgs(readAll(t, s, "b.service", Query{}))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestClose(t *testing.T) {
	s := openStore(t, Options{})
	w, err := s.Pipe("p.service", Stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString("before close\n"); err != nil {
		t.Fatal(err)
	}
	followErr := make(chan error, 1)
	go func() {
		followErr <- s.Read(context.Background(), "p.service", Query{Follow: true}, func(Entry) error { return nil })
	}()
	waitEntries(t, s, "p.service", 1)
	if err := s.Close(); err != nil { // must not hang on the open writer
		t.Fatal(err)
	}
	if err := <-followErr; !errors.Is(err, ErrClosed) {
		t.Errorf("follower ended with %v, want ErrClosed", err)
	}
	if err := s.Append("p.service", Stdout, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := s.Pipe("p.service", Stdout); !errors.Is(err, ErrClosed) {
		t.Errorf("Pipe after Close: %v", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := openStore(b, Options{MaxFileSize: 1 << 30})
	msg := strings.Repeat("x", 100)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Append("bench.service", Stdout, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipe measures the whole path a child's output takes: pipe read,
// line split, timestamp, format, write. One op is one line.
func BenchmarkPipe(b *testing.B) {
	s := openStore(b, Options{MaxFileSize: 1 << 30})
	w, err := s.Pipe("bench.service", Stdout)
	if err != nil {
		b.Fatal(err)
	}
	line := []byte(strings.Repeat("y", 99) + "\n")
	chunk := make([]byte, 0, 64*len(line))
	for range 64 {
		chunk = append(chunk, line...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := b.N
	for n >= 64 {
		w.Write(chunk)
		n -= 64
	}
	w.Write(chunk[:n*len(line)])
	w.Close()
	s.wg.Wait() // the reader ends at EOF
}

func TestFollowLastNAndStop(t *testing.T) {
	s := openStore(t, Options{})
	for i := range 5 {
		s.Append("n.service", Stdout, fmt.Sprint(i))
	}
	stop := errors.New("enough")
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- s.Read(context.Background(), "n.service", Query{N: 2, Follow: true}, func(e Entry) error {
			got = append(got, e.Msg)
			if len(got) == 4 {
				return stop
			}
			return nil
		})
	}()
	// Append until the follower has stopped; entries before it registered
	// come from the files, the rest from the broadcast.
	for i := 5; ; i++ {
		s.Append("n.service", Stdout, fmt.Sprint(i))
		select {
		case err := <-done:
			if !errors.Is(err, stop) {
				t.Fatalf("Read returned %v, want fn's error", err)
			}
			// N=2 starts at the second-to-last entry when the follower
			// registered, which is at least "3".
			if mustAtoi(t, got[0]) < 3 {
				t.Errorf("follower started at %v, want only the last 2 entries of the history", got)
			}
			for j := 1; j < len(got); j++ {
				if got[j] != fmt.Sprint(mustAtoi(t, got[j-1])+1) {
					t.Fatalf("follower saw %v: gap or duplicate", got)
				}
			}
			s.units["n.service"].mu.Lock()
			n := len(s.units["n.service"].subs)
			s.units["n.service"].mu.Unlock()
			if n != 0 {
				t.Errorf("%d followers still registered after Read returned", n)
			}
			return
		default:
		}
		if i > 1_000_000 {
			t.Fatal("follower never stopped")
		}
		time.Sleep(time.Millisecond)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
