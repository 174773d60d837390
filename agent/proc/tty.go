package proc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// TTY is StandardInput=tty and its companions (systemd.exec(5)). The
// terminal is opened by the child, after setsid, because only the process
// that will run the program can make it its controlling terminal; the
// agent cannot hand over an fd that carries that.
type TTY struct {
	// Path is TTYPath=; "" means /dev/console.
	Path string
	// Stdin makes the terminal fd 0 and the controlling terminal of the
	// new session (StandardInput=tty*). How a terminal that is already the
	// controlling terminal of another session is handled is Acquire.
	Stdin   bool
	Acquire Acquire
	// Stdout and Stderr put the terminal on fd 1 and 2
	// (StandardOutput=tty, or inherit with a tty on stdin).
	Stdout, Stderr bool
	// Reset, VHangup and VTDisallocate are TTYReset=, TTYVHangup= and
	// TTYVTDisallocate=: done on the terminal before it is opened for the
	// program, so that a getty starts on a clean line.
	Reset, VHangup, VTDisallocate bool
}

// Acquire is how StandardInput= takes a terminal another session holds.
type Acquire uint8

const (
	// AcquireWait (tty) waits until the other session lets it go.
	AcquireWait Acquire = iota
	// AcquireForce (tty-force) steals it (TIOCSCTTY with force; needs
	// CAP_SYS_ADMIN).
	AcquireForce
	// AcquireFail (tty-fail) fails the start with EXIT_STDIN.
	AcquireFail
)

func (t *TTY) path() string {
	if t.Path == "" {
		return "/dev/console"
	}
	return t.Path
}

// setup does the terminal part of the child's set-up: reset, hang-up and
// VT deallocation first, then opening the line as controlling terminal and
// stdio. It runs in the trampoline after setsid.
func (t *TTY) setup() (int, error) {
	path := t.path()
	if t.Reset || t.VHangup || t.VTDisallocate {
		t.clean(path)
	}
	if t.Stdin {
		fd, err := acquire(path, t.Acquire)
		if err != nil {
			return ExitStdin, fmt.Errorf("tty %s: %w", path, err)
		}
		if err := dupTo(fd, 0); err != nil {
			return ExitStdin, fmt.Errorf("tty %s: stdin: %w", path, err)
		}
	}
	for _, o := range []struct {
		on   bool
		fd   int
		code int
	}{{t.Stdout, 1, ExitStdout}, {t.Stderr, 2, ExitStderr}} {
		if !o.on {
			continue
		}
		if t.Stdin {
			if err := unix.Dup2(0, o.fd); err != nil {
				return o.code, fmt.Errorf("tty %s: fd %d: %w", path, o.fd, err)
			}
			continue
		}
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return o.code, fmt.Errorf("tty %s: %w", path, err)
		}
		if err := dupTo(fd, o.fd); err != nil {
			return o.code, fmt.Errorf("tty %s: fd %d: %w", path, o.fd, err)
		}
	}
	return 0, nil
}

// dupTo moves fd onto target (without close-on-exec) and closes fd.
func dupTo(fd, target int) error {
	if fd == target {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		return err
	}
	err := unix.Dup2(fd, target)
	unix.Close(fd)
	return err
}

// clean is systemd's exec_context_tty_reset: best effort, as there.
func (t *TTY) clean(path string) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	if t.Reset {
		resetTerminal(fd)
	}
	if t.VHangup {
		_ = unix.IoctlSetInt(fd, unix.TIOCVHANGUP, 0)
	}
	unix.Close(fd)
	if t.VTDisallocate {
		vtDisallocate(path)
	}
}

// resetTerminal puts the line back to sane cooked-mode settings, as
// systemd's reset_terminal_fd does, so that a program that left it raw
// does not leave the next getty unusable.
func resetTerminal(fd int) {
	_ = unix.IoctlSetInt(fd, unix.TIOCNXCL, 0) // drop exclusive mode
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.IUCLC
	tio.Iflag |= unix.ICRNL | unix.IMAXBEL | unix.IUTF8
	tio.Oflag |= unix.ONLCR | unix.OPOST
	tio.Cflag |= unix.CREAD
	tio.Lflag = unix.ISIG | unix.ICANON | unix.IEXTEN | unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHOCTL | unix.ECHOKE
	cc := map[int]uint8{
		unix.VINTR: 3, unix.VQUIT: 28, unix.VERASE: 127, unix.VKILL: 21, unix.VEOF: 4,
		unix.VSTART: 17, unix.VSTOP: 19, unix.VSUSP: 26, unix.VLNEXT: 22, unix.VWERASE: 23,
		unix.VREPRINT: 18, unix.VEOL: 0, unix.VEOL2: 0, unix.VTIME: 0, unix.VMIN: 1,
	}
	for i, v := range cc {
		tio.Cc[i] = v
	}
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, tio)
	_ = unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH)
}

// vtDisallocateIoctl is VT_DISALLOCATE from <linux/vt.h> (x/sys has no
// name for it).
const vtDisallocateIoctl = 0x5608

// vtDisallocate frees a virtual console (/dev/ttyN) so that its scrollback
// does not show the previous session; an active VT cannot be freed and is
// cleared instead. Other terminals are left alone.
func vtDisallocate(path string) {
	n, err := strconv.Atoi(strings.TrimPrefix(path, "/dev/tty"))
	if err != nil || n <= 0 || !strings.HasPrefix(path, "/dev/tty") {
		return
	}
	if fd, err := unix.Open("/dev/tty0", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err == nil {
		err = unix.IoctlSetInt(fd, vtDisallocateIoctl, n)
		unix.Close(fd)
		if err == nil {
			return
		}
	}
	if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err == nil {
		writeAll(fd, []byte("\033[r\033[H\033[3J\033[2J"))
		unix.Close(fd)
	}
}

// acquire opens path and makes it the controlling terminal of our (new)
// session. While another session holds it, AcquireWait waits for any close
// of the terminal (inotify), then tries again; a short poll timeout covers
// the window between a holder closing its fds and the kernel releasing
// the terminal at the end of its exit.
func acquire(path string, mode Acquire) (int, error) {
	// One fd for every try: closing our own would wake our own watch.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	force := 0
	if mode == AcquireForce {
		force = 1
	}
	ino := -1
	defer func() {
		if ino >= 0 {
			unix.Close(ino)
		}
	}()
	for {
		err := unix.IoctlSetInt(fd, unix.TIOCSCTTY, force)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EPERM) || mode != AcquireWait {
			unix.Close(fd)
			return -1, fmt.Errorf("controlling terminal: %w", err)
		}
		if ino < 0 {
			if ino, err = unix.InotifyInit1(unix.IN_CLOEXEC); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("controlling terminal: inotify: %w", err)
			}
			if _, err := unix.InotifyAddWatch(ino, path, unix.IN_CLOSE); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("controlling terminal: inotify: %w", err)
			}
			continue // the holder may have let go before the watch existed
		}
		pfd := []unix.PollFd{{Fd: int32(ino), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 200); n > 0 {
			var buf [4096]byte
			_, _ = unix.Read(ino, buf[:])
		}
	}
}
