package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/unixsock"
)

// Live re-exec of the core (issue 7 item 3, docs/RECOVERY.md "daemon-reexec
// and upgrade"). The core stops serving (the listening sockets stay open, so
// clients wait in their backlog), lets running jobs finish, and execs itself
// or a new binary with the same PID, argv and children. The API, CRI and
// notify sockets are handed on in CORRAL_LISTEN_FDS, the supervisor's
// exit-record pipe keeps its fd number (it is in argv). The new image
// re-adopts every unit from the state DB exactly as after a crash.

// quiesceTimeout bounds the wait for running jobs before the exec: a job
// stuck in a long start timeout must not block an upgrade forever. The
// next image re-adopts the unit in whatever state the DB recorded.
const quiesceTimeout = 10 * time.Second

// server is one gRPC server of the core with its listener: stop ends the
// serving (graceful, bounded) and returns when it has.
type server struct {
	name string
	l    *stoppingListener // what the server serves on; l.Listener is the socket
	stop func()
}

// reexecer implements apiserver.Reexecer for the real core.
type reexecer struct {
	m       *manager.Manager
	log     *slog.Logger
	recFD   int // the supervisor's exit-record pipe, or -1
	servers []server
	busy    atomic.Bool
	// exec replaces the process; syscall.Exec, replaced in tests.
	exec func(path string, argv, env []string) error
}

// agentAPI is what the API server talks to: the manager, plus re-exec.
type agentAPI struct {
	*manager.Manager
	*reexecer
}

var _ apiserver.Reexecer = agentAPI{}

// Reexec implements apiserver.Reexecer. It checks path, starts the re-exec
// and returns once the servers stopped accepting, so that the caller's next
// connection is served by the new image.
func (r *reexecer) Reexec(ctx context.Context, path string) error {
	target, err := execTarget(path)
	if err != nil {
		return err
	}
	if !r.busy.CompareAndSwap(false, true) {
		return fmt.Errorf("re-exec of the core: %w (one is under way)", apiserver.ErrUnavailable)
	}
	fds, err := r.passOn()
	if err != nil {
		r.busy.Store(false)
		return err
	}
	stopping := make(chan struct{})
	go r.run(target, fds, stopping)
	select {
	case <-stopping:
	case <-ctx.Done():
	}
	return nil
}

// passOn duplicates every socket the next image takes over.
func (r *reexecer) passOn() (map[string]int, error) {
	fds := map[string]int{}
	undo := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	for _, s := range r.servers {
		fd, err := unixsock.PassOn(s.l.Listener)
		if err != nil {
			undo()
			return nil, fmt.Errorf("re-exec: %s socket: %w", s.name, err)
		}
		fds[s.name] = fd
	}
	fd, err := r.m.PassNotify()
	if err != nil {
		undo()
		return nil, fmt.Errorf("re-exec: %w", err)
	}
	fds["notify"] = fd
	return fds, nil
}

// run stops the servers, waits for jobs and execs. Past the stop there is
// no way back: if the exec fails, the core exits and the supervisor starts
// a new one, which recovers as after a crash.
func (r *reexecer) run(target string, fds map[string]int, stopping chan<- struct{}) {
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, s := range r.servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.stop() }()
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	// The servers close their listeners first thing (grpc GracefulStop),
	// then let calls in flight finish.
	for _, s := range r.servers {
		select {
		case <-s.l.closed():
		case <-stopped:
		}
	}
	close(stopping)
	<-stopped
	ctx, cancel := context.WithTimeout(context.Background(), quiesceTimeout)
	if n := r.m.Quiesce(ctx); n > 0 {
		r.log.Warn("re-exec: jobs still running after the wait; the next image re-adopts their units as recorded", "jobs", n, "waited", quiesceTimeout)
	}
	cancel()
	if r.recFD > 2 {
		if _, err := unix.FcntlInt(uintptr(r.recFD), unix.F_SETFD, 0); err != nil {
			r.log.Error("re-exec: exit-record pipe stays close-on-exec", "fd", r.recFD, "err", err)
		}
	}
	env := []string{unixsock.EnvListenFDs + "=" + unixsock.FormatFDs(fds)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, unixsock.EnvListenFDs+"=") {
			env = append(env, kv)
		}
	}
	r.log.Info("re-executing the core", "path", target, "fds", unixsock.FormatFDs(fds), "stopped_in", time.Since(t0))
	err := r.exec(target, os.Args, env)
	r.log.Error("re-exec failed; exiting so that the supervisor starts a new core", "path", target, "err", err)
	os.Exit(1)
}

// execTarget is the binary to exec: this one ("" → selfExe), or an
// upgrade path, which must be an absolute path to a regular executable file
// owned by root and writable by nobody else, since it will run as the core.
func execTarget(path string) (string, error) {
	if path == "" {
		return selfExe(), nil
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("upgrade to %s: %s: %w", path, why, apiserver.ErrInvalid)
	}
	if !filepath.IsAbs(path) {
		return bad("not an absolute path")
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return bad("no such file")
		}
		return "", fmt.Errorf("upgrade to %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return bad("not a regular file")
	case fi.Mode().Perm()&0o111 == 0:
		return bad("not executable")
	case !ok || st.Uid != 0:
		return bad("not owned by root")
	case fi.Mode().Perm()&0o022 != 0:
		return bad("writable by group or others")
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return bad("not executable: " + err.Error())
	}
	return path, nil
}

// selfExe is the path of this image's binary if that path still names the
// same file, so that the process keeps its name (comm is the basename of
// what is exec'd: "exe" for /proc/self/exe, which ps, pgrep and the
// supervisor's logs would show); /proc/self/exe otherwise (the file was
// replaced or removed, e.g. by a package upgrade: daemon-reexec still runs
// this image; `upgrade` runs a new one).
func selfExe() string {
	const self = "/proc/self/exe"
	p, err := os.Readlink(self)
	if err != nil {
		return self
	}
	a, err1 := os.Stat(self)
	b, err2 := os.Stat(p)
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		return self
	}
	return p
}

// stoppingListener tells when the server closed it: from then on, new
// connections wait in the (passed-on) socket's backlog for the next image.
type stoppingListener struct {
	net.Listener
	once sync.Once
	done chan struct{}
}

func newStoppingListener(l net.Listener) *stoppingListener {
	return &stoppingListener{Listener: l, done: make(chan struct{})}
}

func (l *stoppingListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.done) })
	return err
}

func (l *stoppingListener) closed() <-chan struct{} { return l.done }
