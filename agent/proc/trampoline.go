package proc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaybeTrampoline turns this process into the exec trampoline if it was
// started by Spawner.Start, and otherwise returns at once. It must be the
// first thing main (or TestMain) does: the trampoline never returns, it
// either execs the service or exits with an EXIT_* code.
func MaybeTrampoline() {
	js, ok := os.LookupEnv(envKey)
	if !ok {
		return
	}
	// Some attributes (nice, no_new_privs) are per thread; do everything on
	// the thread that will call execve.
	runtime.LockOSThread()
	var w wire
	if err := json.Unmarshal([]byte(js), &w); err != nil {
		os.Exit(ExitMemory)
	}
	errFD := w.ErrFD
	unix.CloseOnExec(errFD)
	writeAll(errFD, []byte{ack})
	code, err := ExitFDs, closeOthers(errFD+1)
	if err == nil {
		code, err = w.run()
	}
	// Only reached on failure: success replaced this process.
	writeAll(errFD, []byte(strconv.Itoa(code)+" "+err.Error()))
	os.Exit(code)
}

func writeAll(fd int, b []byte) {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		b = b[n:]
	}
}

// closeOthers makes every fd from first on close-on-exec, so that the
// program gets exactly its stdio and extra files: the agent may have
// inherited descriptors without close-on-exec (from whoever started it),
// and fork passed those on to us. The Go runtime's own fds stay usable
// until exec.
func closeOthers(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	ents, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close fds: %w", err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// run performs the set-up steps in the order of systemd's exec_child and
// execs the program. It returns only on failure, with the exit code and an
// error of the form "<step>: <cause>".
func (w *wire) run() (int, error) {
	// A supervisor (sysinit.NoHugePages) turned transparent huge pages off
	// for itself and the core; the setting survives exec, and services get
	// the machine's default back.
	_ = unix.Prctl(unix.PR_SET_THP_DISABLE, 0, 0, 0, 0)
	pid := os.Getpid()
	for _, f := range w.CgroupProcs {
		if err := os.WriteFile(f, []byte(strconv.Itoa(pid)), 0); err != nil {
			return ExitCgroup, fmt.Errorf("cgroup: %w", err)
		}
	}
	// If the core died between our fork and the cgroup join above, the next
	// core has already looked for processes in the unit's cgroup, did not
	// see us, and will start the unit again: going on would run it twice.
	// From here on we are in the cgroup, where recovery finds us. (In a new
	// PID namespace getppid is 0 and cannot tell; the pod holder covers it.)
	if ppid := unix.Getppid(); w.Parent != 0 && ppid != 0 && ppid != w.Parent {
		return ExitCgroup, fmt.Errorf("cgroup: the spawning core (pid %d) died before the process joined its cgroup", w.Parent)
	}
	if err := joinNamespaces(w.Namespaces); err != nil {
		return ExitNamespace, err
	}
	if err := w.setupNamespaces(); err != nil {
		return ExitNamespace, err
	}
	// A controlling terminal needs a session of our own.
	if w.Setsid || (w.TTY != nil && w.TTY.Stdin) {
		if _, err := unix.Setsid(); err != nil {
			return ExitSetsid, fmt.Errorf("setsid: %w", err)
		}
	}
	if w.TTY != nil {
		if code, err := w.TTY.setup(); err != nil {
			return code, err
		}
	}
	for _, l := range w.Rlimits {
		if err := setRlimit(l); err != nil {
			return ExitLimits, fmt.Errorf("setrlimit %s: %w", rlimitName(l.Resource), err)
		}
	}
	if w.Nice != nil {
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, *w.Nice); err != nil {
			return ExitNice, fmt.Errorf("nice %d: %w", *w.Nice, err)
		}
	}
	if w.OOMScoreAdj != nil {
		if err := setOOMScoreAdj(*w.OOMScoreAdj); err != nil {
			return ExitOOMAdjust, err
		}
	}
	if w.Umask != nil {
		unix.Umask(int(*w.Umask))
	}

	if w.Caps != nil {
		if err := w.Caps.dropBounding(); err != nil {
			return ExitCapabilities, err
		}
	}

	if len(w.Seccomp) > 0 {
		if err := w.Seccomp.install(); err != nil {
			return ExitSeccomp, err
		}
	}

	env := w.Env
	home := ""
	if w.User != "" || w.Group != "" || len(w.Groups) > 0 {
		var (
			uid, gid = -1, -1
			groups   []int
			setList  bool
		)
		if w.User != "" {
			a, err := lookupUser(w.User)
			if err != nil {
				return ExitUser, err
			}
			uid, gid, home = a.uid, a.gid, a.home
			mem, err := memberOf(a.name)
			if err != nil {
				return ExitGroup, err
			}
			groups = mem
			setList = true
			env = setDefault(env, "HOME", a.home)
			env = setDefault(env, "USER", a.name)
			env = setDefault(env, "LOGNAME", a.name)
			env = setDefault(env, "SHELL", a.shell)
		}
		if w.Group != "" {
			g, err := lookupGroup(w.Group)
			if err != nil {
				return ExitGroup, err
			}
			gid = g
		}
		if setList && gid >= 0 {
			// initgroups(user, gid): the primary group is in the list too.
			groups = append([]int{gid}, groups...)
		}
		for _, s := range w.Groups {
			g, err := lookupGroup(s)
			if err != nil {
				return ExitGroup, fmt.Errorf("supplementary %w", err)
			}
			groups = append(groups, g)
			setList = true
		}
		if setList {
			if err := syscall.Setgroups(dedup(groups)); err != nil {
				return ExitGroup, fmt.Errorf("setgroups: %w", err)
			}
		}
		if gid >= 0 {
			if err := syscall.Setgid(gid); err != nil {
				return ExitGroup, fmt.Errorf("setgid %d: %w", gid, err)
			}
		}
		if uid > 0 && w.Caps != nil {
			// Keep the permitted set across setuid, so that ambient
			// capabilities can still be raised from it.
			if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
				return ExitCapabilities, fmt.Errorf("capabilities: keepcaps: %w", err)
			}
		}
		if uid >= 0 {
			if err := syscall.Setuid(uid); err != nil {
				return ExitUser, fmt.Errorf("setuid %d: %w", uid, err)
			}
		}
	}
	if w.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return ExitNoNewPrivileges, fmt.Errorf("no_new_privs: %w", err)
		}
	}

	dir := w.Dir
	if dir == "~" {
		dir = home
		if dir == "" {
			dir = os.Getenv("HOME")
		}
	}
	if dir == "" {
		dir = "/"
	}
	if err := unix.Chdir(dir); err != nil {
		if !w.DirOptional {
			return ExitChdir, fmt.Errorf("chdir %s: %w", dir, err)
		}
		if err := unix.Chdir("/"); err != nil {
			return ExitChdir, fmt.Errorf("chdir /: %w", err)
		}
	}
	// Capabilities last, as runc does: the working directory is entered
	// with the user's own rights, whatever the program may do later.
	if w.Caps != nil {
		if err := w.Caps.apply(); err != nil {
			return ExitCapabilities, err
		}
	}
	if w.Init {
		// Set up: tell the spawner (the error pipe closes as an exec
		// would close it), then stay.
		unix.Close(w.ErrFD)
		runInit()
	}
	if w.SetListenPID {
		env = setEnv(env, "LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	// fds 0, 1, 2 and the extra files were put in place by the fork
	// (dup2 without close-on-exec); the error pipe is close-on-exec.
	return ExitExec, execute(w.Path, w.Argv, env)
}

// setOOMScoreAdj sets our OOM score adjustment. Lowering it needs
// CAP_SYS_RESOURCE; without it we keep the lowest value we are allowed,
// which is the current one, as a start must not fail for this.
func setOOMScoreAdj(v int) error {
	const f = "/proc/self/oom_score_adj"
	err := os.WriteFile(f, []byte(strconv.Itoa(v)), 0)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return nil // clamped: the current value is the lowest we may have
	}
	return fmt.Errorf("oom_score_adj %d: %w", v, err)
}

// execute resolves path like execvp (PATH from env, else DefaultPath) and
// execs it.
func execute(path string, argv, env []string) error {
	if strings.Contains(path, "/") {
		if err := syscall.Exec(path, argv, env); err != nil {
			return fmt.Errorf("exec %s: %w", path, err)
		}
		return nil
	}
	search := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			search = v
		}
	}
	var first error
	for _, d := range filepath.SplitList(search) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, path)
		err := syscall.Exec(p, argv, env)
		if first == nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			first = fmt.Errorf("exec %s: %w", p, err)
		}
	}
	if first != nil {
		return first
	}
	return fmt.Errorf("exec %s: not found in PATH %s", path, search)
}

func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, k+"=") {
			out = append(out, kv)
		}
	}
	return append(out, k+"="+v)
}

func setDefault(env []string, k, v string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return env
		}
	}
	return append(env, k+"="+v)
}

func dedup(g []int) []int {
	seen := map[int]bool{}
	out := g[:0]
	for _, x := range g {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

var rlimitNames = map[int]string{
	unix.RLIMIT_CPU: "RLIMIT_CPU", unix.RLIMIT_FSIZE: "RLIMIT_FSIZE",
	unix.RLIMIT_DATA: "RLIMIT_DATA", unix.RLIMIT_STACK: "RLIMIT_STACK",
	unix.RLIMIT_CORE: "RLIMIT_CORE", unix.RLIMIT_RSS: "RLIMIT_RSS",
	unix.RLIMIT_NPROC: "RLIMIT_NPROC", unix.RLIMIT_NOFILE: "RLIMIT_NOFILE",
	unix.RLIMIT_MEMLOCK: "RLIMIT_MEMLOCK", unix.RLIMIT_AS: "RLIMIT_AS",
	unix.RLIMIT_LOCKS: "RLIMIT_LOCKS", unix.RLIMIT_SIGPENDING: "RLIMIT_SIGPENDING",
	unix.RLIMIT_MSGQUEUE: "RLIMIT_MSGQUEUE", unix.RLIMIT_NICE: "RLIMIT_NICE",
	unix.RLIMIT_RTPRIO: "RLIMIT_RTPRIO", unix.RLIMIT_RTTIME: "RLIMIT_RTTIME",
}

func rlimitName(r int) string {
	if n, ok := rlimitNames[r]; ok {
		return n
	}
	return "resource " + strconv.Itoa(r)
}

// nsType is a namespace a spec may join, by its name in /proc/PID/ns.
type nsType struct {
	name string
	flag int
}

// nsOrder is the order namespaces are joined in: the mount namespace last,
// so that the other paths are still resolved in ours.
var nsOrder = []nsType{
	{"cgroup", unix.CLONE_NEWCGROUP}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}, {"mnt", unix.CLONE_NEWNS},
}

// joinNamespaces enters each namespace of ns with setns(2) on this (locked)
// thread, which is the one that execs, so the program starts inside them.
// Joining a mount namespace needs a thread that does not share its
// filesystem attributes, hence unshare(CLONE_FS) first.
func joinNamespaces(ns map[string]string) error {
	for k := range ns {
		if !slices.ContainsFunc(nsOrder, func(o nsType) bool { return o.name == k }) {
			return fmt.Errorf("namespace %s: unknown type", k)
		}
	}
	for _, o := range nsOrder {
		path, ok := ns[o.name]
		if !ok {
			continue
		}
		if o.flag == unix.CLONE_NEWNS {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("namespace mnt %s: unshare CLONE_FS: %w", path, err)
			}
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("namespace %s %s: %w", o.name, path, err)
		}
		err = unix.Setns(fd, o.flag)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("namespace %s %s: setns: %w", o.name, path, err)
		}
	}
	return nil
}

// setRlimit sets one Limit*=. Raising a hard limit above the current one
// needs CAP_SYS_RESOURCE, which root lacks on some machines (DESIGN §8):
// then the limit is clamped to the current hard limit, like oom_score_adj,
// because a unit asking for more file descriptors than the machine allows
// should still start with as many as it may have.
func setRlimit(l Rlimit) error {
	err := syscall.Setrlimit(l.Resource, &syscall.Rlimit{Cur: l.Cur, Max: l.Max})
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	var cur syscall.Rlimit
	if gerr := syscall.Getrlimit(l.Resource, &cur); gerr != nil || l.Max <= cur.Max {
		return err
	}
	clamped := syscall.Rlimit{Cur: min(l.Cur, cur.Max), Max: cur.Max}
	return syscall.Setrlimit(l.Resource, &clamped)
}
