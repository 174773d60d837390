package notify

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPassOnFromFile: a datagram sent while the socket is only held by the
// passed-on fd (the core is between two program images) is received by the
// Listener built from that fd, with the sender's credentials.
func TestPassOnFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	old, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := old.PassOn()
	if err != nil {
		t.Fatal(err)
	}
	old.conn.Close() // the old image's copy goes away (exec), the path stays
	if err := Send(path, "READY=1"); err != nil {
		t.Fatalf("send while between images: %v", err)
	}
	if _, err := FromFile(os.NewFile(uintptr(fd), "notify"), path+".x"); err == nil {
		t.Fatal("FromFile accepted a socket bound to another path")
	}
	fd, err = dupOf(t, path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := FromFile(os.NewFile(uintptr(fd), "notify"), path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan Message, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx, func(m Message) { got <- m })
	select {
	case m := <-got:
		if m.Raw != "READY=1" || m.PID != os.Getpid() {
			t.Errorf("got %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the datagram sent between images was lost")
	}
}

// dupOf binds a fresh socket at path (the first one was consumed by the
// failed FromFile) and passes it on, for the success case.
func dupOf(t *testing.T, path string) (int, error) {
	t.Helper()
	l, err := Listen(path)
	if err != nil {
		return -1, err
	}
	fd, err := l.PassOn()
	l.conn.Close()
	if err == nil {
		Send(path, "READY=1")
	}
	return fd, err
}
