// Package guest is the agent inside a VM pod: PID 1 of the microVM. It
// mounts what a container needs, runs each container as a process chrooted
// into an overlay of its read-only image, and serves the host over the
// wire protocol (exec, logs, port-forward, shutdown). Standard library and
// x/sys only: its size is boot time under TCG.
package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/guest/wire"
)

// DefaultPath is the PATH of container processes that set none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Args of the calls (see docs/VM.md).
type (
	// CreateArgs prepares a container's root filesystem.
	CreateArgs struct {
		ID     string   `json:"id"`
		Device string   `json:"device"` // block device of the read-only image, e.g. "vda"
		Argv   []string `json:"argv"`
		Env    []string `json:"env,omitempty"`
		Cwd    string   `json:"cwd,omitempty"`
		// User is the OCI user ("uid[:gid]" or "name[:group]"),
		// resolved in the image; "" is root.
		User string `json:"user,omitempty"`
		// Files are written into the container's root, e.g.
		// /etc/resolv.conf from the pod's DNS config; only /etc/<name>.
		Files map[string]string `json:"files,omitempty"`
		// Hostname is the pod's; the guest's UTS name is set to it.
		Hostname string `json:"hostname,omitempty"`
		// Groups are supplementary groups added to the user's own
		// (the security context's supplemental_groups).
		Groups []uint32 `json:"groups,omitempty"`
	}
	// IDArgs names a container.
	IDArgs struct {
		ID string `json:"id"`
	}
	// KillArgs signals a container's main process.
	KillArgs struct {
		ID     string `json:"id"`
		Signal int    `json:"signal"`
	}
	// ExecArgs runs a process in a running container.
	ExecArgs struct {
		ID    string   `json:"id"`
		Argv  []string `json:"argv"`
		TTY   bool     `json:"tty,omitempty"`
		Stdin bool     `json:"stdin,omitempty"`
	}
	// DialArgs connects to a TCP port on the guest's loopback.
	DialArgs struct {
		Port int `json:"port"`
	}
	// Started is the result of start and exec.
	Started struct {
		PID int `json:"pid"`
	}
	// Info is the result of ping.
	Info struct {
		Kernel     string `json:"kernel"`
		Containers int    `json:"containers"`
	}
	// SignalArgs is the payload of a Signal frame.
	SignalArgs struct {
		Signal int `json:"signal"`
	}
	// ResizeArgs is the payload of a Resize frame.
	ResizeArgs struct {
		Width  uint16 `json:"width"`
		Height uint16 `json:"height"`
	}
)

// Agent serves the host.
type Agent struct {
	// Root is where the agent keeps images and container roots
	// ("/run/corral" in the VM; a temp dir in tests).
	Root string
	// Dev is where block devices are ("/dev").
	Dev string
	// SysBlock is sysfs' block directory ("/sys/block"), where device
	// serials are read; empty takes device names as given.
	SysBlock string
	// PowerOff ends the VM after a shutdown call (reboot(2) in the VM).
	PowerOff func()
	Log      *slog.Logger

	once       sync.Once
	reaper     *reaper
	mu         sync.Mutex
	containers map[string]*container
	mounted    map[string]string // device → mount point
}

type container struct {
	args   CreateArgs
	cred   Cred
	root   string // overlay mount point
	pid    int
	exited chan struct{}
}

func (a *Agent) init() {
	a.once.Do(func() {
		a.reaper = newReaper()
		a.containers = map[string]*container{}
		a.mounted = map[string]string{}
		if a.Log == nil {
			a.Log = slog.Default()
		}
	})
}

// Serve answers calls on conn until it closes.
func (a *Agent) Serve(conn io.ReadWriter) error {
	a.init()
	m := wire.NewMux(conn, false, a.handle)
	return m.Run()
}

func (a *Agent) handle(s *wire.Stream, req wire.Request) {
	var err error
	var res any
	switch req.Method {
	case "ping":
		var u unix.Utsname
		unix.Uname(&u)
		a.mu.Lock()
		n := len(a.containers)
		a.mu.Unlock()
		res = Info{Kernel: unix.ByteSliceToString(u.Release[:]), Containers: n}
	case "create":
		var args CreateArgs
		if err = json.Unmarshal(req.Args, &args); err == nil {
			err = a.create(args)
		}
	case "start":
		var args IDArgs
		if err = json.Unmarshal(req.Args, &args); err == nil {
			err = a.start(s, args.ID)
		}
		if err == nil {
			return // the stream ended with an Exit frame
		}
	case "exec":
		var args ExecArgs
		if err = json.Unmarshal(req.Args, &args); err == nil {
			err = a.exec(s, args)
		}
		if err == nil {
			return
		}
	case "dial":
		var args DialArgs
		if err = json.Unmarshal(req.Args, &args); err == nil {
			err = a.dial(s, args.Port)
		}
		if err == nil {
			return
		}
	case "kill":
		var args KillArgs
		if err = json.Unmarshal(req.Args, &args); err == nil {
			err = a.kill(args.ID, syscall.Signal(args.Signal))
		}
	case "remove":
		var args IDArgs
		if err = json.Unmarshal(req.Args, &args); err == nil {
			err = a.remove(args.ID)
		}
	case "shutdown":
		a.shutdown()
		s.Reply(nil, nil)
		if a.PowerOff != nil {
			a.PowerOff()
		}
		return
	default:
		err = fmt.Errorf("unknown method %q", req.Method)
	}
	if err != nil {
		a.Log.Warn("call failed", "method", req.Method, "err", err)
	}
	s.Reply(res, err)
}

// imageDir mounts the read-only image on device once and returns where.
func (a *Agent) imageDir(device string) (string, error) {
	if device == "" || strings.Contains(device, "/") {
		return "", fmt.Errorf("bad image device %q", device)
	}
	if d, ok := a.mounted[device]; ok {
		return d, nil
	}
	dir := filepath.Join(a.Root, "images", device)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dev := filepath.Join(a.Dev, a.blockDevice(device))
	// The host writes an image into a slot device after boot (microvm
	// has no hotplug): drop whatever the kernel read of it before (the
	// partition scan at probe saw zeros).
	if f, err := os.Open(dev); err == nil {
		unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0)
		f.Close()
	}
	if err := unix.Mount(dev, dir, "ext4", unix.MS_RDONLY, "noload"); err != nil {
		return "", fmt.Errorf("mount image %s on %s: %w", dev, dir, err)
	}
	a.mounted[device] = dir
	return dir, nil
}

// writeEtc writes /etc/<name> in a container's root. The image's own
// file is removed first and the new one created with O_NOFOLLOW|O_EXCL,
// so a symlink in the image cannot redirect the write onto the guest.
func writeEtc(root, name, content string) error {
	dir, base := filepath.Split(name)
	if dir != "/etc/" || base == "" || base == "." || base == ".." {
		return fmt.Errorf("file %q: only /etc/<name> can be written", name)
	}
	etc := filepath.Join(root, "etc")
	if fi, err := os.Lstat(etc); err != nil {
		if err := os.Mkdir(etc, 0o755); err != nil {
			return err
		}
	} else if !fi.IsDir() {
		return fmt.Errorf("file %s: the image's /etc is not a directory", name)
	}
	p := filepath.Join(etc, base)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file %s: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("file %s: %w", name, err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// blockDevice maps a virtio-blk serial (the host names its drives img0,
// img1, ...) to the device node's name; a name that is already a device
// (vda) is kept. Serials, because the order in which virtio-mmio devices
// are probed is not the order of QEMU's command line.
func (a *Agent) blockDevice(name string) string {
	if a.SysBlock == "" {
		return name
	}
	ents, _ := os.ReadDir(a.SysBlock)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(a.SysBlock, e.Name(), "serial"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return e.Name()
		}
	}
	return name
}

// create prepares the container's root: an overlay of the image with a
// writable layer in guest memory, and its own /proc, /sys and /dev.
func (a *Agent) create(args CreateArgs) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if args.ID == "" || strings.ContainsAny(args.ID, "/.") {
		return fmt.Errorf("bad container id %q", args.ID)
	}
	if _, ok := a.containers[args.ID]; ok {
		return fmt.Errorf("container %s exists", args.ID)
	}
	if len(args.Argv) == 0 {
		return fmt.Errorf("container %s: empty command", args.ID)
	}
	lower, err := a.imageDir(args.Device)
	if err != nil {
		return fmt.Errorf("container %s: %w", args.ID, err)
	}
	dir := filepath.Join(a.Root, "containers", args.ID)
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("container %s: %w", args.ID, err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("container %s: mount overlay: %w", args.ID, err)
	}
	for _, m := range []struct{ fs, dir string }{{"proc", "proc"}, {"sysfs", "sys"}, {"devtmpfs", "dev"}} {
		p := filepath.Join(root, m.dir)
		os.MkdirAll(p, 0o755)
		if err := unix.Mount(m.fs, p, m.fs, unix.MS_NOSUID, ""); err != nil {
			a.unmount(root)
			return fmt.Errorf("container %s: mount %s: %w", args.ID, p, err)
		}
	}
	os.MkdirAll(filepath.Join(root, "dev", "pts"), 0o755)
	unix.Mount("devpts", filepath.Join(root, "dev", "pts"), "devpts", unix.MS_NOSUID, "newinstance,ptmxmode=0666")
	for name, content := range args.Files {
		if err := writeEtc(root, name, content); err != nil {
			a.unmount(root)
			return fmt.Errorf("container %s: %w", args.ID, err)
		}
	}
	if args.Hostname != "" {
		unix.Sethostname([]byte(args.Hostname))
	}
	cred, err := ResolveUser(root, args.User)
	if err != nil {
		a.unmount(root)
		return fmt.Errorf("container %s: %w", args.ID, err)
	}
	cred.Groups = addGroups(cred.Groups, args.Groups)
	a.containers[args.ID] = &container{args: args, root: root, cred: cred}
	return nil
}

func (a *Agent) unmount(root string) {
	for _, d := range []string{"dev/pts", "dev", "sys", "proc", ""} {
		unix.Unmount(filepath.Join(root, d), unix.MNT_DETACH)
	}
}

// lookPath resolves argv0 inside root. Lstat, because image symlinks are
// absolute paths inside the image (busybox applets), not on the guest.
func lookPath(root, argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, argv0)
		if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable file %q not found in $PATH", argv0)
}

func (a *Agent) env(c *container) []string {
	return withDefaults(c.args.Env, c.cred.Home)
}

// withDefaults adds PATH and HOME unless env (the image's, then the
// container's) sets them: the first of duplicate names wins in libc.
func withDefaults(env []string, home string) []string {
	if home == "" {
		home = "/"
	}
	var out []string
	for _, kv := range []string{"PATH=" + DefaultPath, "HOME=" + home} {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") }) {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// start runs the container's main process and streams its output until it
// exits.
func (a *Agent) start(s *wire.Stream, id string) error {
	a.mu.Lock()
	c := a.containers[id]
	a.mu.Unlock()
	if c == nil {
		return fmt.Errorf("container %s: not found", id)
	}
	if c.pid != 0 {
		return fmt.Errorf("container %s: already started", id)
	}
	env := a.env(c)
	return a.run(s, c, c.args.Argv, env, c.args.Cwd, false, false, func(pid int) {
		a.mu.Lock()
		c.pid = pid
		c.exited = make(chan struct{})
		a.mu.Unlock()
	}, func() { close(c.exited) })
}

func (a *Agent) exec(s *wire.Stream, args ExecArgs) error {
	a.mu.Lock()
	c := a.containers[args.ID]
	a.mu.Unlock()
	if c == nil {
		return fmt.Errorf("container %s: not found", args.ID)
	}
	if len(args.Argv) == 0 {
		return fmt.Errorf("exec in container %s: empty command", args.ID)
	}
	return a.run(s, c, args.Argv, a.env(c), c.args.Cwd, args.TTY, args.Stdin, nil, nil)
}

// run spawns argv in c's root with its output on s, then relays s's stdin,
// signal and resize frames, and ends s with an Exit frame.
func (a *Agent) run(s *wire.Stream, c *container, argv, env []string, cwd string, tty, stdin bool, started func(int), exited func()) error {
	path, err := lookPath(c.root, argv[0], env)
	if err != nil {
		return err
	}
	if cwd == "" {
		cwd = "/"
	}
	var files [3]*os.File
	var parent []*os.File // our ends
	var child []*os.File  // closed after the fork
	var ptm *os.File
	sys := &syscall.SysProcAttr{Chroot: c.root, Setsid: true}
	if cr := c.cred; cr.UID != 0 || cr.GID != 0 || len(cr.Groups) > 0 {
		sys.Credential = &syscall.Credential{Uid: cr.UID, Gid: cr.GID, Groups: cr.Groups}
	}
	if tty {
		m, sl, err := openPty()
		if err != nil {
			return err
		}
		ptm = m
		files = [3]*os.File{sl, sl, sl}
		child = append(child, sl)
		sys.Setctty = true
		sys.Ctty = 0
	} else {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		child = append(child, devnull)
		files[0] = devnull
		if stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			files[0] = r
			child = append(child, r)
			parent = append(parent, w)
		}
		for i := 1; i <= 2; i++ {
			r, w, err := os.Pipe()
			if err != nil {
				return err
			}
			files[i] = w
			child = append(child, w)
			parent = append(parent, r)
		}
	}
	attr := &syscall.ProcAttr{Dir: cwd, Env: env, Files: []uintptr{files[0].Fd(), files[1].Fd(), files[2].Fd()}, Sys: sys}
	pid, exit, err := a.reaper.start(path, argv, attr)
	for _, f := range child {
		f.Close()
	}
	if err != nil {
		for _, f := range parent {
			f.Close()
		}
		if ptm != nil {
			ptm.Close()
		}
		return fmt.Errorf("exec %s in container %s: %w", argv[0], c.args.ID, err)
	}
	if started != nil {
		started(pid)
	}
	s.Reply(Started{PID: pid}, nil)

	var copies sync.WaitGroup
	var in io.WriteCloser
	if ptm != nil {
		in = ptm
		copies.Add(1)
		go func() { defer copies.Done(); io.Copy(s.Writer(wire.Stdout), ptm) }()
	} else {
		outs := parent
		if stdin {
			in = parent[0]
			outs = parent[1:]
		}
		for i, r := range outs {
			kind := wire.Stdout
			if i == 1 {
				kind = wire.Stderr
			}
			copies.Add(1)
			go func() { defer copies.Done(); io.Copy(s.Writer(kind), r); r.Close() }()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			f, err := s.Recv(ctx)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					syscall.Kill(-pid, syscall.SIGKILL) // the host is gone
				}
				return
			}
			switch f.Kind {
			case wire.Stdin:
				if in != nil {
					in.Write(f.Data)
				}
			case wire.CloseStdin:
				if in != nil && ptm == nil {
					in.Close()
				}
			case wire.Signal:
				var sa SignalArgs
				if json.Unmarshal(f.Data, &sa) == nil {
					syscall.Kill(pid, syscall.Signal(sa.Signal))
				}
			case wire.Resize:
				var r ResizeArgs
				if ptm != nil && json.Unmarshal(f.Data, &r) == nil {
					unix.IoctlSetWinsize(int(ptm.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: r.Height, Col: r.Width})
				}
			}
		}
	}()
	ws := <-exit
	// Output still buffered is read until the writers are gone, bounded in
	// case a background child keeps them.
	if ptm != nil {
		ptm.SetReadDeadline(time.Now().Add(time.Second))
	} else {
		for _, f := range parent {
			f.SetReadDeadline(time.Now().Add(time.Second))
		}
	}
	copies.Wait()
	if ptm != nil {
		ptm.Close()
	}
	if stdin && ptm == nil {
		parent[0].Close()
	}
	if exited != nil {
		exited()
	}
	code, sig := exitStatus(ws)
	s.SendJSON(wire.Exit, wire.ExitStatus{Code: code, Signal: sig})
	return nil
}

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

func (a *Agent) kill(id string, sig syscall.Signal) error {
	a.mu.Lock()
	c := a.containers[id]
	a.mu.Unlock()
	if c == nil {
		return fmt.Errorf("container %s: not found", id)
	}
	if c.pid == 0 {
		return nil
	}
	if err := syscall.Kill(c.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("container %s: kill: %w", id, err)
	}
	return nil
}

// remove kills what is left of the container and unmounts its root.
func (a *Agent) remove(id string) error {
	a.mu.Lock()
	c := a.containers[id]
	a.mu.Unlock()
	if c == nil {
		return nil
	}
	if c.pid != 0 {
		syscall.Kill(-c.pid, syscall.SIGKILL)
		syscall.Kill(c.pid, syscall.SIGKILL)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("container %s: main process %d does not die", id, c.pid)
		}
	}
	a.unmount(c.root)
	os.RemoveAll(filepath.Dir(c.root))
	a.mu.Lock()
	delete(a.containers, id)
	a.mu.Unlock()
	return nil
}

// shutdown ends every process and flushes the filesystems.
func (a *Agent) shutdown() {
	a.mu.Lock()
	var pids []int
	for _, c := range a.containers {
		if c.pid != 0 {
			pids = append(pids, c.pid)
		}
	}
	a.mu.Unlock()
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGTERM)
	}
	syscall.Sync()
}

// dial connects the stream to a TCP port on the guest's loopback
// (port-forward).
func (a *Agent) dial(s *wire.Stream, port int) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	s.Reply(nil, nil)
	done := make(chan struct{})
	go func() {
		io.Copy(s.Writer(wire.Stdout), conn)
		close(done)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			f, err := s.Recv(ctx)
			if err != nil {
				conn.Close()
				return
			}
			switch f.Kind {
			case wire.Stdin:
				conn.Write(f.Data)
			case wire.CloseStdin:
				conn.(*net.TCPConn).CloseWrite()
			}
		}
	}()
	<-done
	s.SendJSON(wire.Exit, wire.ExitStatus{})
	return nil
}
