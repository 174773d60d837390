package proc

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's master (non-blocking, so reads take
// deadlines) and the path of its slave.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("openpt: %v", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "ptmx")
	t.Cleanup(func() { m.Close() })
	return m, "/dev/pts/" + strconv.Itoa(n)
}

// readUntil reads the master until want appeared (or 20 s passed) and
// returns everything read.
func readUntil(t *testing.T, m *os.File, want string) string {
	t.Helper()
	var out strings.Builder
	buf := make([]byte, 4096)
	m.SetReadDeadline(time.Now().Add(20 * time.Second))
	for !strings.Contains(out.String(), want) {
		n, err := m.Read(buf)
		out.Write(buf[:n])
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: no slave open (yet/any more)
			t.Fatalf("reading the terminal for %q: %v; got %q", want, err, out.String())
		}
		if errors.Is(err, syscall.EIO) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out.String()
}

func startTTY(t *testing.T, script string, tty *TTY) (int, error) {
	t.Helper()
	spec := sh(script)
	spec.Setsid = true
	spec.TTY = tty
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return (&Spawner{}).Start(ctx, spec)
}

func TestTTYStdio(t *testing.T) {
	tests := []struct {
		name   string
		tty    func(path string) *TTY
		script string
		want   []string
	}{
		{
			"stdin, stdout, stderr and controlling terminal",
			func(p string) *TTY { return &TTY{Path: p, Stdin: true, Stdout: true, Stderr: true} },
			`echo "in=$(readlink /proc/self/fd/0)"; (exec 3</dev/tty) && echo ctty=yes; echo err=yes >&2; echo done`,
			[]string{"in=%s", "ctty=yes", "err=yes"},
		},
		{
			"output only: no controlling terminal, stdin stays /dev/null",
			func(p string) *TTY { return &TTY{Path: p, Stdout: true, Stderr: true} },
			`echo "in=$(readlink /proc/self/fd/0)"; (exec 3</dev/tty) 2>/dev/null || echo ctty=no; echo done`,
			[]string{"in=/dev/null", "ctty=no"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, slave := openPTY(t)
			pid, err := startTTY(t, tt.script, tt.tty(slave))
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			out := readUntil(t, m, "done")
			if ws := waitPID(t, pid); ws.ExitStatus() != 0 {
				t.Errorf("exit %v", ws)
			}
			for _, w := range tt.want {
				if strings.Contains(w, "%s") {
					w = strings.ReplaceAll(w, "%s", slave)
				}
				if !strings.Contains(out, w) {
					t.Errorf("terminal output %q lacks %q", out, w)
				}
			}
		})
	}
}

// ttyNr is field 7 of /proc/PID/stat: the controlling terminal's device,
// 0 for none.
func ttyNr(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, _ := strconv.Atoi(f[7-3])
	return n
}

func TestTTYAcquire(t *testing.T) {
	m, slave := openPTY(t)
	holder, err := startTTY(t, `echo holding; exec sleep 1000`, &TTY{Path: slave, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatalf("holder: %v", err)
	}
	defer func() { unix.Kill(holder, unix.SIGKILL); waitPID(t, holder) }()
	readUntil(t, m, "holding")
	if ttyNr(t, holder) == 0 {
		t.Fatal("the holder has no controlling terminal")
	}

	// tty-fail: the line is taken.
	pid, err := startTTY(t, `echo should-not-run`, &TTY{Path: slave, Stdin: true, Acquire: AcquireFail})
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != ExitStdin {
		t.Errorf("tty-fail on a held terminal: %v, want EXIT_STDIN", err)
	}
	if pid > 0 {
		if ws := waitPID(t, pid); ws.ExitStatus() != ExitStdin {
			t.Errorf("tty-fail exit %v, want %d", ws, ExitStdin)
		}
	}

	// tty-force: steals it from the holder.
	thief, err := startTTY(t, `(exec 3</dev/tty) && echo stolen; exec sleep 1000`, &TTY{Path: slave, Stdin: true, Stdout: true, Acquire: AcquireForce})
	if err != nil {
		t.Fatalf("tty-force: %v", err)
	}
	readUntil(t, m, "stolen")
	if ttyNr(t, holder) != 0 {
		t.Error("the holder still has the terminal after tty-force")
	}

	// tty: waits until the thief is gone.
	done := make(chan error, 1)
	var waiter int
	go func() {
		var err error
		waiter, err = startTTY(t, `(exec 3</dev/tty) && echo acquired`, &TTY{Path: slave, Stdin: true, Stdout: true})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("tty took a terminal another session holds (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	unix.Kill(thief, unix.SIGKILL)
	waitPID(t, thief)
	if err := <-done; err != nil {
		t.Fatalf("tty after the holder left: %v", err)
	}
	readUntil(t, m, "acquired")
	if ws := waitPID(t, waiter); ws.ExitStatus() != 0 {
		t.Errorf("waiter exit %v", ws)
	}
}

func TestTTYResetAndHangup(t *testing.T) {
	_, slave := openPTY(t)
	fd, err := unix.Open(slave, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ICANON | unix.ECHO // raw, as a crashed program may leave it
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	pid, err := startTTY(t, `true`, &TTY{Path: slave, Reset: true, VHangup: true})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	waitPID(t, pid)
	if _, err := unix.Write(fd, []byte("x")); !errors.Is(err, unix.EIO) {
		t.Errorf("write on an fd opened before TTYVHangup=: %v, want EIO", err)
	}
	fd2, err := unix.Open(slave, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd2)
	tio, err = unix.IoctlGetTermios(fd2, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO {
		t.Errorf("lflag %#x after TTYReset=: want ICANON|ECHO set", tio.Lflag)
	}
}
