package logs

import (
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPipeKeepSurvivesTheStoresReader: the kept read end is another
// descriptor of the same pipe, so a write after the store (the core) lost
// its reader does not fail with EPIPE; Resume on a new store, given the
// kept descriptor, drains what waited in the pipe, in order.
func TestPipeKeepSurvivesTheStoresReader(t *testing.T) {
	s1 := openStore(t, Options{})
	w, keep, err := s1.PipeKeep("a.service", Stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if fl, _ := unix.FcntlInt(keep.Fd(), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Errorf("kept fd is not close-on-exec in the core")
	}
	if _, err := w.WriteString("one\n"); err != nil {
		t.Fatal(err)
	}
	waitEntries(t, s1, "a.service", 1)
	// The core dies: its reader goes away, the child's kept fd stays.
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("two\nthree\n"); err != nil {
		t.Fatalf("write with only the kept reader: %v", err)
	}
	s2, err := Open(s1.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Resume("a.service", Stdout, keep); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("four\n"); err != nil {
		t.Fatal(err)
	}
	got := msgs(waitEntries(t, s2, "a.service", 4))
	if want := []string{"stdout:one", "stdout:two", "stdout:three", "stdout:four"}; !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
}

func TestResumeRejects(t *testing.T) {
	s := openStore(t, Options{})
	for _, tc := range []struct {
		name, unit string
		stream     Stream
	}{
		{"bad stream", "a.service", "no pe"},
		{"bad unit name", "../x", Stdout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := s.Resume(tc.unit, tc.stream, r); err == nil {
				t.Errorf("Resume(%q, %q) succeeded", tc.unit, tc.stream)
			}
		})
	}
}
