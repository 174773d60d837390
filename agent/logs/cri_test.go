package logs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// criRecords parses a CRI log file into "stream tag first-char*len" strings
// (msg summarized) and checks every timestamp.
func criRecords(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			t.Fatalf("record without newline: %q", l)
		}
		f := strings.SplitN(strings.TrimSuffix(l, "\n"), " ", 4)
		if len(f) != 4 {
			t.Fatalf("malformed CRI record %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("record %q: timestamp: %v", l, err)
		}
		msg := f[3]
		if len(msg) > 20 {
			msg = fmt.Sprintf("%c*%d", msg[0], len(msg))
		}
		out = append(out, f[1]+" "+f[2]+" "+msg)
	}
	return out
}

// run starts script with stdout and stderr on pipes of unit and waits until
// the store has recorded want entries.
func runInto(t *testing.T, s *Store, unit, script string, want int) {
	t.Helper()
	before := len(readAll(t, s, unit, Query{}))
	o, err := s.Pipe(unit, Stdout)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Pipe(unit, Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdout, cmd.Stderr = o, e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o.Close()
	e.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := len(waitEntries(t, s, unit, before+want)); got != before+want {
		t.Fatalf("store has %d records of %s, want %d", got, unit, before+want)
	}
}

func TestCRIMirror(t *testing.T) {
	s := openStore(t, Options{})
	path := filepath.Join(t.TempDir(), "pod", "c", "0.log")
	c, err := OpenCRIFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.SetMirror("c.service", c); err != nil {
		t.Fatal(err)
	}
	s.Append("c.service", Core, "Started c.") // Corral's own lines stay out of the container log
	runInto(t, s, "c.service", `echo hello; echo oops >&2; head -c 20000 /dev/zero | tr '\0' a; echo; head -c 16384 /dev/zero | tr '\0' b; echo; printf tail`, 6)
	got := criRecords(t, path)
	want := []string{"stdout F hello", "stderr F oops", "stdout P a*16384", "stdout F a*3616", "stdout P b*16384", "stdout F ", "stdout F tail"}
	// stdout and stderr are read concurrently: compare each stream in order.
	for _, stream := range []string{"stdout", "stderr"} {
		if diff := cmp.Diff(filter(want, stream), filter(got, stream)); diff != "" {
			t.Errorf("%s records (-want +got):\n%s", stream, diff)
		}
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err: %v", err)
	}
	// The store keeps everything, for `corralctl logs`.
	// (the newline ending an exactly maxLine long line is no record there).
	if n := len(readAll(t, s, "c.service", Query{})); n != 7 {
		t.Errorf("store has %d records, want 7 (6 lines and the core one)", n)
	}
}

func filter(recs []string, stream string) []string {
	var out []string
	for _, r := range recs {
		if strings.HasPrefix(r, stream+" ") {
			out = append(out, r)
		}
	}
	return out
}

func TestCRIReopenAndStop(t *testing.T) {
	s := openStore(t, Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	c, err := OpenCRIFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.SetMirror("r.service", c)
	runInto(t, s, "r.service", "echo one", 1)
	// kubelet rotates: rename, then ReopenContainerLog.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Reopen(); err != nil {
		t.Fatal(err)
	}
	runInto(t, s, "r.service", "echo two", 1)
	if diff := cmp.Diff([]string{"stdout F one"}, criRecords(t, path+".1")); diff != "" {
		t.Errorf("rotated file (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"stdout F two"}, criRecords(t, path)); diff != "" {
		t.Errorf("reopened file (-want +got):\n%s", diff)
	}
	s.SetMirror("r.service", nil)
	runInto(t, s, "r.service", "echo three", 1)
	if diff := cmp.Diff([]string{"stdout F two"}, criRecords(t, path)); diff != "" {
		t.Errorf("after SetMirror(nil) (-want +got):\n%s", diff)
	}
}
