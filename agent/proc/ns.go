package proc

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// cloneFlags turns namespace type names into clone flags.
func cloneFlags(types []string) (uintptr, error) {
	var f uintptr
	for _, t := range types {
		i := slices.IndexFunc(nsOrder, func(o nsType) bool { return o.name == t })
		if i < 0 {
			return 0, fmt.Errorf("new namespace %s: unknown type", t)
		}
		f |= uintptr(nsOrder[i].flag)
	}
	return f, nil
}

// forkInPIDNamespace runs fork on a thread that entered the PID namespace
// at path (for its children: setns(2) never moves the caller itself), and
// puts the thread back into its own PID namespace afterwards. A thread that
// cannot go back stays locked and dies with its goroutine, so that no other
// goroutine ever forks into the wrong namespace.
func forkInPIDNamespace(path string, fork func() (int, error)) (int, error) {
	type result struct {
		pid int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{0, fmt.Errorf("namespace pid: own namespace: %w", err)}
			return
		}
		defer unix.Close(self)
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{0, fmt.Errorf("namespace pid %s: %w", path, err)}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWPID); err != nil {
			runtime.UnlockOSThread()
			ch <- result{0, fmt.Errorf("namespace pid %s: setns: %w", path, err)}
			return
		}
		pid, err := fork()
		if unix.Setns(self, unix.CLONE_NEWPID) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{pid, err}
	}()
	r := <-ch
	return r.pid, r.err
}

// Mount is one mount in the child's own mount namespace: a bind mount of
// Source, or a new tmpfs.
type Mount struct {
	Source, Target string
	// Type is "" (a recursive bind mount of Source) or "tmpfs" (Data are
	// its options, e.g. "size=65536k").
	Type     string
	Data     string
	ReadOnly bool
	// Optional mounts are skipped when Target does not exist (masked
	// paths that this kernel does not have).
	Optional bool
	// Propagation of the new mount: "private" (default), "rslave" (mounts
	// made on the host under Source appear) or "rshared".
	Propagation string
	// Create is "dir" or "file" when Target may be missing and is to be
	// created (its parents too) before mounting; the caller decides where
	// that is allowed, as it writes wherever Target resolves.
	Create string
}

// setupNamespaces finishes namespaces the child was created in, and gives
// it a private mount namespace with its mounts. It runs on the locked
// thread, after the pod's namespaces were joined and before privileges are
// dropped.
func (w *wire) setupNamespaces() error {
	created := func(t string) bool { return slices.Contains(w.NewNamespaces, t) }
	if created("mnt") {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return fmt.Errorf("mount namespace: make / rslave: %w", err)
		}
	}
	if created("uts") && w.Hostname != "" {
		if err := unix.Sethostname([]byte(w.Hostname)); err != nil {
			return fmt.Errorf("sethostname %s: %w", w.Hostname, err)
		}
	}
	if created("net") {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("network namespace: %w", err)
		}
	}
	if err := w.applySysctls(); err != nil {
		return err
	}
	if w.PrivateMounts {
		// CLONE_NEWNS implies CLONE_FS: only this thread changes namespace,
		// and it is the one that execs.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("mount namespace: unshare: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return fmt.Errorf("mount namespace: make / rslave: %w", err)
		}
	}
	own := w.PrivateMounts || created("mnt")
	if !own && (w.MountProc || len(w.Mounts) > 0 || w.ReadOnlyRoot) {
		return errors.New("mounts need a mount namespace of the child's own (PrivateMounts)")
	}
	if w.MountProc {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount proc on /proc: %w", err)
		}
	}
	for _, m := range w.Mounts {
		if err := m.mount(); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Target, err)
		}
	}
	if w.ReadOnlyRoot {
		if err := remountReadOnly("/"); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	return nil
}

var propagation = map[string]uintptr{
	"": unix.MS_PRIVATE, "private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE,
	"rslave": unix.MS_SLAVE, "slave": unix.MS_SLAVE, "rshared": unix.MS_SHARED, "shared": unix.MS_SHARED,
}

func (m Mount) mount() error {
	prop, ok := propagation[m.Propagation]
	if !ok {
		return fmt.Errorf("unknown propagation %q", m.Propagation)
	}
	if _, err := os.Lstat(m.Target); errors.Is(err, os.ErrNotExist) {
		switch {
		case m.Optional:
			return nil
		case m.Create != "":
			if err := create(m.Target, m.Create); err != nil {
				return err
			}
		}
	}
	switch m.Type {
	case "":
		if err := unix.Mount(m.Source, m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
	case "tmpfs":
		if err := unix.Mount("tmpfs", m.Target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, m.Data); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mount type %q", m.Type)
	}
	if m.ReadOnly {
		if err := remountReadOnly(m.Target); err != nil {
			return err
		}
	}
	if err := unix.Mount("", m.Target, "", unix.MS_REC|prop, ""); err != nil {
		return fmt.Errorf("propagation %s: %w", m.Propagation, err)
	}
	return nil
}

// remountReadOnly makes the mount at path read-only in this namespace. A
// bind remount sets every per-mount flag: keep nosuid, nodev, noexec and
// the atime flags it had.
func remountReadOnly(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("read-only: statfs: %w", err)
	}
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if err := unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, ""); err != nil {
		return fmt.Errorf("read-only remount: %w", err)
	}
	return nil
}

func create(path, kind string) error {
	switch kind {
	case "dir":
		if err := os.MkdirAll(path, 0o755); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
	case "file":
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
		f.Close()
	default:
		return fmt.Errorf("create mount point: unknown kind %q", kind)
	}
	return nil
}

// loopbackUp brings up lo in a new network namespace: nothing else in the
// pod would, and CNI plugins only configure the pod's interface.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// runInit is the child of an Init spec once set up: it reaps every process
// re-parented to it (as PID 1 of a PID namespace, all the pod's orphans).
// SIGTERM ends it as Go's default does, so that a supervisor shutting down
// (SIGTERM, then SIGKILL after a grace period) is not kept waiting.
func runInit() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
		}
		<-ch
	}
}
