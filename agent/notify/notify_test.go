package notify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMain doubles as a notify sender in a separate process: the real case
// is a service, not the agent, sending.
func TestMain(m *testing.M) {
	if sock := os.Getenv("NOTIFY_TEST_SOCKET"); sock != "" {
		if err := Send(sock, os.Getenv("NOTIFY_TEST_STATE")); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"READY=1", map[string]string{"READY": "1"}},
		{"READY=1\nSTATUS=Processing requests\n", map[string]string{"READY": "1", "STATUS": "Processing requests"}},
		{"STATUS=a=b", map[string]string{"STATUS": "a=b"}},
		{"garbage\nMAINPID=42\n=x", map[string]string{"MAINPID": "42"}},
		{"STATUS=one\nSTATUS=two", map[string]string{"STATUS": "two"}},
		{"", map[string]string{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, Parse(tt.in)); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

type recv struct {
	l    *Listener
	msgs chan Message
	logs *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// listen starts a listener in a directory every user can traverse.
func listen(t *testing.T) *recv {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Listen(filepath.Join(dir, "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	r := &recv{l: l, msgs: make(chan Message, 16), logs: &syncBuf{}}
	l.Log = slog.New(slog.NewTextHandler(r.logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, func(m Message) { r.msgs <- m }) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(l.Path()); !os.IsNotExist(err) {
			t.Errorf("socket %s left behind: %v", l.Path(), err)
		}
	})
	return r
}

func (r *recv) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
		return Message{}
	}
}

func TestSocketMode(t *testing.T) {
	r := listen(t)
	fi, err := os.Stat(r.l.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o777 {
		t.Fatalf("socket mode %v, want socket 0777", fi.Mode())
	}
}

func TestReceiveFromThisProcess(t *testing.T) {
	r := listen(t)
	if err := Send(r.l.Path(), "READY=1\nSTATUS=up"); err != nil {
		t.Fatal(err)
	}
	m := r.next(t)
	if m.PID != os.Getpid() || m.UID != os.Getuid() || m.Raw != "READY=1\nSTATUS=up" {
		t.Fatalf("got %+v, want pid %d uid %d", m, os.Getpid(), os.Getuid())
	}
	if diff := cmp.Diff(map[string]string{"READY": "1", "STATUS": "up"}, m.Fields); diff != "" {
		t.Fatal(diff)
	}
}

func TestSenderInOtherProcess(t *testing.T) {
	r := listen(t)
	for _, tt := range []struct {
		name string
		cred *syscall.Credential
		uid  int
	}{
		{"root", nil, 0},
		{"nobody", &syscall.Credential{Uid: 65534, Gid: 65534}, 65534},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/proc/self/exe")
			cmd.Env = []string{"NOTIFY_TEST_SOCKET=" + r.l.Path(), "NOTIFY_TEST_STATE=READY=1\nMAINPID=4242"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: tt.cred}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("sender: %v: %s", err, stderr.String())
			}
			m := r.next(t)
			if m.PID != cmd.Process.Pid || m.UID != tt.uid {
				t.Fatalf("credentials pid %d uid %d, want pid %d uid %d", m.PID, m.UID, cmd.Process.Pid, tt.uid)
			}
			if m.Fields["MAINPID"] != "4242" || m.Fields["READY"] != "1" {
				t.Fatalf("fields %v", m.Fields)
			}
		})
	}
}

func TestFDStore(t *testing.T) {
	r := listen(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := SendFiles(r.l.Path(), "FDSTORE=1\nFDNAME=pipe", pw); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	m := r.next(t)
	if len(m.FDs) != 1 || m.Fields["FDSTORE"] != "1" {
		t.Fatalf("got %d fds, fields %v", len(m.FDs), m.Fields)
	}
	// The received fd is the same pipe: writing to it reaches our reader.
	if _, err := m.FDs[0].WriteString("through"); err != nil {
		t.Fatal(err)
	}
	m.FDs[0].Close()
	b, err := io.ReadAll(pr)
	if err != nil || string(b) != "through" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestOversizedDropped(t *testing.T) {
	r := listen(t)
	if err := Send(r.l.Path(), "STATUS="+strings.Repeat("x", MaxMessage)); err != nil {
		t.Fatal(err)
	}
	if err := Send(r.l.Path(), "READY=1"); err != nil {
		t.Fatal(err)
	}
	// Datagrams arrive in order, so the first message handled must be the
	// second one sent.
	if m := r.next(t); m.Raw != "READY=1" {
		t.Fatalf("first handled message %.40q, want READY=1", m.Raw)
	}
	if !strings.Contains(r.logs.String(), "oversized notify message dropped") {
		t.Fatalf("no log line for the oversized message; logs: %s", r.logs.String())
	}
}

func TestAbstractSocketSend(t *testing.T) {
	if err := Send("@corral-notify-test-nonexistent", "READY=1"); err == nil {
		t.Fatal("send to a missing abstract socket succeeded")
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "n.sock")
	l1, err := Listen(p)
	if err != nil {
		t.Fatal(err)
	}
	l1.conn.Close() // crash: the file stays behind
	l2, err := Listen(p)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
}
