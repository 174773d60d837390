package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPassOnAndFromFile: the socket handed on survives the close of the old
// listener (path kept, connections queue), and FromFile serves them.
func TestPassOnAndFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.sock")
	l, err := Listen(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := PassOn(l)
	if err != nil {
		t.Fatal(err)
	}
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
		t.Errorf("passed-on fd %d is close-on-exec", fd)
	}
	l.Close()
	c, err := net.Dial("unix", p) // waits in the backlog
	if err != nil {
		t.Fatalf("dial while no listener object exists: %v", err)
	}
	defer c.Close()
	t.Setenv(EnvListenFDs, FormatFDs(map[string]int{"api": fd}))
	got, err := Inherited()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := os.LookupEnv(EnvListenFDs); ok {
		t.Error("Inherited left the variable in the environment")
	}
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("inherited fd %d is not close-on-exec again", fd)
	}
	if _, err := FromFile(got["api"], p+".other"); err == nil {
		t.Fatal("FromFile accepted a socket bound to another path")
	}
	// The failed FromFile consumed (closed) the fd.
	t.Setenv(EnvListenFDs, "api:"+strconv.Itoa(fd))
	if _, err := Inherited(); err == nil {
		t.Error("Inherited accepted a closed fd")
	}
}

func TestFromFileServes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.sock")
	l, err := Listen(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := PassOn(l)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nl, err := FromFile(os.NewFile(uintptr(fd), "api"), p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := nl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := s.Read(b); err != nil || b[0] != 'x' {
		t.Errorf("read %q, %v", b, err)
	}
	s.Close()
	nl.Close()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("inherited listener did not unlink %s on close: %v", p, err)
	}
}

func TestParseFDs(t *testing.T) {
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	good := strconv.Itoa(int(r.Fd()))
	for _, tc := range []struct {
		v     string
		names int
		ok    bool
	}{
		{"", 0, true},
		{"api:" + good, 1, true},
		{"api", 0, false},
		{"api:x", 0, false},
		{":" + good, 0, false},
		{"api:2", 0, false},
		{"api:" + good + ",api:" + good, 0, false},
		{"api:99999", 0, false},
	} {
		got, err := parseFDs(tc.v)
		if (err == nil) != tc.ok || len(got) != tc.names {
			t.Errorf("parseFDs(%q) = %v, %v", tc.v, got, err)
		}
	}
}
