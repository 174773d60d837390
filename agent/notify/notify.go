package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Limits as systemd sets them: a datagram larger than a page is not a
// notification but a mistake or an attack, and is dropped whole.
const (
	MaxMessage = 4096
	MaxFDs     = 768
)

// Message is one sd_notify datagram.
type Message struct {
	PID    int               // sender, from SCM_CREDENTIALS
	UID    int               // sender, from SCM_CREDENTIALS
	Fields map[string]string // KEY=VALUE lines; later lines win
	Raw    string            // the datagram as received
	FDs    []*os.File        // SCM_RIGHTS (FDSTORE=1); the handler owns them
}

// Listener is the notify socket.
type Listener struct {
	// Log receives a line for every datagram that is dropped; nil means
	// slog.Default().
	Log *slog.Logger

	path string
	conn *net.UnixConn
}

// Listen binds the notify socket at path (replacing a stale socket file),
// enables SO_PASSCRED and makes the socket writable by everybody, so that
// services running under User= can reach it.
func Listen(path string) (*Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket %s: %w", path, err)
	}
	fail := func(err error) (*Listener, error) {
		conn.Close()
		return nil, fmt.Errorf("notify socket %s: %w", path, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return fail(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return fail(err)
	}
	if serr != nil {
		return fail(fmt.Errorf("SO_PASSCRED: %w", serr))
	}
	if err := os.Chmod(path, 0o777); err != nil {
		return fail(err)
	}
	return &Listener{path: path, conn: conn}, nil
}

// Path is the socket path, for $NOTIFY_SOCKET.
func (l *Listener) Path() string { return l.path }

// Close closes and removes the socket.
func (l *Listener) Close() error {
	err := l.conn.Close()
	if rerr := os.Remove(l.path); err == nil && rerr != nil && !os.IsNotExist(rerr) {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("notify socket %s: %w", l.path, err)
	}
	return nil
}

func (l *Listener) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.Default()
}

// Run receives datagrams and calls handle for each valid one, in order,
// until ctx is done or the listener is closed.
func (l *Listener) Run(ctx context.Context, handle func(Message)) {
	stop := context.AfterFunc(ctx, func() { l.conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, MaxMessage+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*MaxFDs))
	for {
		n, oobn, flags, _, err := l.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			l.log().Error("notify socket receive failed", "path", l.path, "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		m, perr := parseOOB(oob[:oobn])
		switch {
		case perr != nil:
			l.log().Warn("notify message with bad control data dropped", "path", l.path, "err", perr)
		case flags&unix.MSG_TRUNC != 0 || n > MaxMessage:
			l.log().Warn("oversized notify message dropped", "path", l.path, "pid", m.PID, "max", MaxMessage)
		case flags&unix.MSG_CTRUNC != 0:
			l.log().Warn("notify message with too many fds dropped", "path", l.path, "pid", m.PID, "max", MaxFDs)
		default:
			m.Raw = string(buf[:n])
			m.Fields = Parse(m.Raw)
			handle(m)
			continue
		}
		for _, f := range m.FDs {
			f.Close()
		}
	}
}

// parseOOB extracts credentials and file descriptors.
func parseOOB(oob []byte) (Message, error) {
	m := Message{PID: 0, UID: -1}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return m, err
	}
	for i := range cmsgs {
		c := &cmsgs[i]
		if c.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch c.Header.Type {
		case unix.SCM_CREDENTIALS:
			cred, err := unix.ParseUnixCredentials(c)
			if err != nil {
				return m, err
			}
			m.PID, m.UID = int(cred.Pid), int(cred.Uid)
		case unix.SCM_RIGHTS:
			fds, err := unix.ParseUnixRights(c)
			if err != nil {
				return m, err
			}
			for _, fd := range fds {
				m.FDs = append(m.FDs, os.NewFile(uintptr(fd), "notify-fd"))
			}
		}
	}
	return m, nil
}

// Parse splits a notification into its KEY=VALUE lines. Lines without '='
// are ignored, as systemd does; a later duplicate wins.
func Parse(s string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			f[k] = v
		}
	}
	return f
}

// Send is an sd_notify client: it sends state to socket (a path, or
// "@name" for an abstract socket).
func Send(socket, state string) error { return SendFiles(socket, state) }

// SendFiles is Send with file descriptors attached (as FDSTORE=1 does).
func SendFiles(socket, state string, files ...*os.File) error {
	name := socket
	if strings.HasPrefix(socket, "@") {
		name = "\x00" + socket[1:]
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify %s: %w", socket, err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, []byte(state), oob, &unix.SockaddrUnix{Name: name}, 0); err != nil {
		return fmt.Errorf("notify %s: %w", socket, err)
	}
	return nil
}
