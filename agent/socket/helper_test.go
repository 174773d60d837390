package socket

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral.io/corral/agent/socket/activation"
	"corral.io/corral/agent/unit"
)

// The test binary doubles as the activated service: with CORRAL_SOCKET_HELPER
// set, TestMain runs a tiny socket-activated server instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CORRAL_SOCKET_HELPER"); mode != "" {
		os.Exit(helper(mode))
	}
	goleak.VerifyTestMain(m)
}

// helper is the child side. Like proc.Spec.SetListenPID, it sets LISTEN_PID
// to its own PID (the parent cannot know it before fork), then reads its fds
// exactly as sd_listen_fds does.
func helper(mode string) int {
	os.Setenv("LISTEN_PID", fmt.Sprint(os.Getpid()))
	files, err := activation.Files(true)
	if err != nil || len(files) == 0 {
		fmt.Fprintf(os.Stderr, "helper: activation.Files: %v (%d files)\n", err, len(files))
		return 1
	}
	if os.Getenv("LISTEN_FDS") != "" {
		fmt.Fprintln(os.Stderr, "helper: LISTEN_FDS not unset")
		return 1
	}
	f := files[0]
	switch mode {
	case "stream": // Accept=no: accept one connection on the listening fd
		ln, err := net.FileListener(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		fmt.Fprintf(c, "hello from %d name=%s nfds=%d\n", os.Getpid(), f.Name(), len(files))
		c.Close()
	case "datagram":
		pc, err := net.FilePacketConn(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		buf := make([]byte, 1500)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		pc.WriteTo([]byte("echo:"+string(buf[:n])), from)
	case "fifo":
		line, err := bufio.NewReader(f).ReadString('\n')
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		os.WriteFile(os.Getenv("CORRAL_HELPER_OUT"), []byte("got "+line), 0o644)
	case "instance": // Accept=yes: fd 3 is the connection itself
		c, err := net.FileConn(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		if os.Getenv("CORRAL_HELPER_HOLD") != "" {
			// Stay running (an open instance) until the client closes.
			fmt.Fprintf(c, "%s %s", os.Getenv("CORRAL_INSTANCE"), line)
			bufio.NewReader(c).ReadString('\n')
			return 0
		}
		fmt.Fprintf(c, "%s %s", os.Getenv("CORRAL_INSTANCE"), line)
		c.Close()
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
		return 1
	}
	return 0
}

// fakeManager is the Activator: it spawns the test binary in a helper mode
// as the "service", the way the manager would through proc and the reaper.
type fakeManager struct {
	t    *testing.T
	mode string
	env  []string
	sock *Socket
	// noSpawn makes ActivateService a no-op that leaves the service
	// inactive (for the trigger limit).
	noSpawn bool

	mu          sync.Mutex
	active      map[string]bool
	activations int
	instances   []string
	wg          sync.WaitGroup
}

func newFakeManager(t *testing.T, mode string, env ...string) *fakeManager {
	f := &fakeManager{t: t, mode: mode, env: env, active: map[string]bool{}}
	t.Cleanup(f.wg.Wait)
	return f
}

func (f *fakeManager) ActivateService(ctx context.Context, service string) error {
	f.mu.Lock()
	f.activations++
	f.mu.Unlock()
	if f.noSpawn {
		return nil
	}
	files, names := f.sock.Files()
	defer func() {
		for _, file := range files {
			file.Close()
		}
	}()
	env := append(f.env, fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	return f.spawn(service, files, env, f.sock.ServiceStopped)
}

func (f *fakeManager) ActivateInstance(ctx context.Context, service string, conn *os.File) error {
	defer conn.Close() // ours now; the child has its own copy
	f.mu.Lock()
	f.instances = append(f.instances, service)
	f.mu.Unlock()
	env := append(f.env, "LISTEN_FDS=1", "LISTEN_FDNAMES=connection", "CORRAL_INSTANCE="+service)
	return f.spawn(service, []*os.File{conn}, env, func() { f.sock.InstanceStopped(service) })
}

func (f *fakeManager) spawn(service string, files []*os.File, env []string, stopped func()) error {
	cmd := exec.Command(os.Args[0])
	// GORACE: a -race child otherwise sleeps a second before exiting.
	cmd.Env = append(os.Environ(), "CORRAL_SOCKET_HELPER="+f.mode, "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = files
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", service, err)
	}
	f.mu.Lock()
	f.active[service] = true
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		err := cmd.Wait()
		if err != nil || out.Len() > 0 {
			f.t.Logf("%s exited: %v: %s", service, err, out.String())
		}
		f.mu.Lock()
		f.active[service] = false
		f.mu.Unlock()
		stopped()
	}()
	return nil
}

func (f *fakeManager) ServiceActive(service string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active[service]
}

func (f *fakeManager) count() (activations int, instances []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.activations, append([]string(nil), f.instances...)
}

// startSocket builds and starts a socket unit wired to f and stops it at
// the end of the test.
func startSocket(t *testing.T, name string, cfg unit.Socket, f *fakeManager) *Socket {
	t.Helper()
	s := New(&unit.Unit{Name: name, Type: unit.TypeSocket, Socket: &cfg}, "/", f, nil)
	f.sock = s
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

// eventually polls cond with a generous deadline; it only keeps a broken
// test from hanging, it does not measure anything.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T, network, host string) int {
	t.Helper()
	if strings.HasPrefix(network, "udp") {
		pc, err := net.ListenPacket(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dialRead connects, optionally sends msg, and returns the first line.
func dialRead(t *testing.T, network, addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if msg != "" {
		fmt.Fprintln(c, msg)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v (got %q)", addr, err, line)
	}
	return strings.TrimSpace(line)
}
