package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/runtimes"
)

// running returns a running container and its pod.
func (b *Backend) running(id string) (*container, *pod, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.containerLocked(id)
	if err != nil {
		return nil, nil, err
	}
	if c.rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, nil, fmt.Errorf("%w: container %s is not running", runtimes.ErrPrecondition, id)
	}
	p := b.pods[c.rec.PodID]
	if p == nil {
		return nil, nil, notFound("pod sandbox", c.rec.PodID)
	}
	return c, p, nil
}

// execSpec is a process "inside" a container: its cgroup, its pod's
// namespaces, the mount and PID namespaces of its main process (which
// carry its bind mounts and /proc), its environment, user, working
// directory and capabilities.
func (b *Backend) execSpec(c *container, p *pod, argv []string) (*proc.Spec, error) {
	env := []string{"PATH=" + proc.DefaultPath}
	for _, kv := range c.cfg.GetEnvs() {
		env = append(env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	sp := &proc.Spec{
		Path: argv[0], Argv: argv, Env: env, Dir: c.cfg.GetWorkingDir(), DirOptional: true,
		CgroupProcs: b.cg.ProcsFiles(c.rec.Cgroup), Setsid: true,
	}
	// The unit's state is read outside b.mu (lock order, see ContainerStatus).
	st, _ := b.units.UnitState(c.rec.Unit)
	if st.MainPID <= 0 {
		return nil, fmt.Errorf("%w: container %s has no running main process", runtimes.ErrPrecondition, c.rec.ID)
	}
	main := "/proc/" + strconv.Itoa(st.MainPID) + "/ns/"
	b.mu.Lock()
	sp.Namespaces = p.nsPaths()
	if sp.Namespaces == nil {
		sp.Namespaces = map[string]string{}
	}
	sp.Namespaces["mnt"] = main + "mnt"
	delete(sp.Namespaces, "pid")
	if c.rec.PIDMode != runtimeapi.NamespaceMode_NODE {
		sp.Namespaces["pid"] = main + "pid"
	}
	sp.Caps = c.rec.Caps
	sp.Seccomp = c.rec.Seccomp
	b.mu.Unlock()
	sc := c.cfg.GetLinux().GetSecurityContext()
	if u := sc.GetRunAsUser(); u != nil {
		sp.User = strconv.FormatInt(u.GetValue(), 10)
	} else if n := sc.GetRunAsUsername(); n != "" {
		sp.User = n
	}
	if g := sc.GetRunAsGroup(); g != nil {
		sp.Group = strconv.FormatInt(g.GetValue(), 10)
	}
	for _, g := range sc.GetSupplementalGroups() {
		sp.SupplementaryGroups = append(sp.SupplementaryGroups, strconv.FormatInt(g, 10))
	}
	sp.NoNewPrivileges = sc.GetNoNewPrivs()
	return sp, nil
}

func exitCode(x reaper.Exit) int32 {
	if c := x.Code(); c >= 0 {
		return int32(c)
	}
	return 128 + int32(x.Signal())
}

// ExecSync runs cmd in the container and returns its output and exit code;
// past timeout (0: none) the command is killed and the call fails with
// DeadlineExceeded.
func (b *Backend) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	if len(cmd) == 0 || cmd[0] == "" {
		return nil, nil, 0, invalid("exec in container %s: empty command", id)
	}
	c, p, err := b.running(id)
	if err != nil {
		return nil, nil, 0, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	sp, err := b.execSpec(c, p, cmd)
	if err != nil {
		return nil, nil, 0, err
	}
	res, err := b.procExec().Run(ctx, sp, nil)
	if err != nil {
		var pe *proc.Error
		if errors.As(err, &pe) {
			return res.Stdout, []byte(pe.Msg + "\n"), int32(pe.Code), nil
		}
		return nil, nil, 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	if res.TimedOut {
		return res.Stdout, res.Stderr, exitCode(res.Exit), fmt.Errorf("exec in container %s: timeout %s exceeded: %w", id, timeout, context.DeadlineExceeded)
	}
	return res.Stdout, res.Stderr, exitCode(res.Exit), nil
}

// StreamingRuntime serves exec, attach and port-forward for Corral's
// streaming server.
func (b *Backend) StreamingRuntime() streaming.Runtime { return streamer{b} }

type streamer struct{ b *Backend }

// Exec runs cmd in the container with the client's streams, on a pseudo
// terminal when tty is set.
func (s streamer) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	b := s.b
	if len(cmd) == 0 {
		return invalid("exec in container %s: empty command", id)
	}
	c, p, err := b.running(id)
	if err != nil {
		return err
	}
	sp, err := b.execSpec(c, p, cmd)
	if err != nil {
		return err
	}
	var closeAfter []*os.File // the child's ends
	var copies sync.WaitGroup
	var master *os.File
	if tty {
		var slave *os.File
		if master, slave, err = openPty(); err != nil {
			return fmt.Errorf("exec in container %s: %w", id, err)
		}
		defer master.Close()
		sp.Stdin, sp.Stdout, sp.Stderr = slave, slave, slave
		closeAfter = append(closeAfter, slave)
		go func() {
			for sz := range resize {
				unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
			}
		}()
		if in != nil {
			go io.Copy(master, in)
		}
		if out != nil {
			copies.Add(1)
			go func() { defer copies.Done(); io.Copy(out, master) }()
		}
	} else {
		if in != nil {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			sp.Stdin = r
			closeAfter = append(closeAfter, r)
			go func() { io.Copy(w, in); w.Close() }()
		}
		for _, o := range []struct {
			w   io.Writer
			dst **os.File
		}{{out, &sp.Stdout}, {errw, &sp.Stderr}} {
			if o.w == nil {
				continue
			}
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			*o.dst = w
			closeAfter = append(closeAfter, w)
			copies.Add(1)
			go func() { defer copies.Done(); io.Copy(o.w, r); r.Close() }()
		}
	}
	pid, err := b.units.Spawner().Start(context.WithoutCancel(ctx), sp)
	for _, f := range closeAfter {
		f.Close()
	}
	if pid <= 0 {
		return fmt.Errorf("exec in container %s: %w", id, err)
	}
	exits := b.units.Reaper().Watch(pid)
	defer b.units.Reaper().Unwatch(pid)
	var x reaper.Exit
	select {
	case x = <-exits:
	case <-ctx.Done():
		syscall.Kill(pid, syscall.SIGKILL)
		x = <-exits
	}
	if master != nil {
		// Output still in the terminal is read until the slave side is
		// gone (EIO), bounded in case a background child holds it.
		master.SetReadDeadline(time.Now().Add(time.Second))
	}
	waitTimeout(&copies, 2*time.Second)
	if err != nil {
		var pe *proc.Error
		if errors.As(err, &pe) {
			return utilexec.CodeExitError{Err: pe, Code: pe.Code}
		}
		return fmt.Errorf("exec in container %s: %w", id, err)
	}
	if code := exitCode(x); code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q in container %s: %s", cmd[0], id, x), Code: int(code)}
	}
	return nil
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// openPty opens a new pseudo terminal pair.
func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty slave: %w", err)
	}
	return m, s, nil
}

// Attach connects the client to the container's stdin (when the container
// was created with stdin) and to its output, which is read back from the
// container's log as it grows.
func (s streamer) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	b := s.b
	c, _, err := b.running(id)
	if err != nil {
		return err
	}
	b.mu.Lock()
	stdin := c.stdinW
	once := c.cfg.GetStdinOnce()
	t := c.tee
	b.mu.Unlock()
	done := make(chan struct{})
	if in != nil && stdin != nil {
		go func() {
			io.Copy(stdin, in)
			if once {
				b.mu.Lock()
				if c.stdinW != nil {
					c.stdinW.Close()
					c.stdinW = nil
				}
				b.mu.Unlock()
			}
		}()
	}
	go func() {
		defer close(done)
		if t != nil {
			t.attach(out, errw, ctx.Done())
			b.awaitExit(ctx, c, 5*time.Second)
			return
		}
		// Started before an agent restart: the log is all there is.
		b.followOutput(ctx, c, out, errw)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// PortForward connects stream to 127.0.0.1:port in the pod's network
// namespace.
func (s streamer) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	b := s.b
	p, err := b.getPod(podID)
	if err != nil {
		return err
	}
	b.mu.Lock()
	nsPath := p.nsPaths()["net"]
	b.mu.Unlock()
	conn, err := dialIn(ctx, nsPath, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("port-forward to pod %s port %d: %w", podID, port, err)
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite(); errc <- err }()
	go func() { _, err := io.Copy(stream, conn); errc <- err }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	return err
}

// dialIn dials addr from inside the network namespace at nsPath ("" = the
// host's): the socket is created on a thread that entered the namespace,
// and keeps it after the thread goes back.
func dialIn(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext(ctx, "tcp", addr)
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the thread stays locked and dies with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// awaitExit waits (at most limit) until the container is no longer seen
// as running: its output ends a moment before its exit is recorded, and a
// client whose attach ended expects the status to say so.
func (b *Backend) awaitExit(ctx context.Context, c *container, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b.mu.Lock()
		st := c.rec.State
		b.mu.Unlock()
		if st != runtimeapi.ContainerState_CONTAINER_RUNNING {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
