package proc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// envKey carries the serialized spec to the trampoline. The environment is
// the one channel that no helper binary parses for its own purposes (test
// binaries parse their flags, for one), and execve replaces it entirely.
const envKey = "CORRAL_TRAMPOLINE"

// DefaultPath is searched for a relative Path when Env has no PATH, as
// systemd does.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Spec is everything the child sets up between fork and exec.
type Spec struct {
	Path                string   // absolute, or searched in Env's PATH (DefaultPath if none)
	Argv                []string // argv, including argv[0]; empty = [Path]
	Env                 []string // the complete environment
	Dir                 string   // "" = "/"; "~" = the user's home
	DirOptional         bool     // a missing Dir is not an error ("-" prefix)
	User, Group         string   // names or numbers, resolved in the child from /etc/passwd and /etc/group
	SupplementaryGroups []string // names or numbers, resolved in the child
	Umask               *uint32
	Nice                *int
	OOMScoreAdj         *int // clamped to what we may set, never fatal for lack of privilege
	Rlimits             []Rlimit
	CgroupProcs         []string // cgroup.procs files the child writes its own PID into before exec
	Stdin, Stdout       *os.File // nil = /dev/null
	Stderr              *os.File // nil = /dev/null
	ExtraFiles          []*os.File
	SetListenPID        bool // child sets LISTEN_PID=<its pid>
	Setsid              bool // default true for services
	NoNewPrivileges     bool
	// Namespaces maps a namespace type ("net", "ipc", "uts", "mnt", "pid",
	// "cgroup") to a file of that namespace (e.g. /proc/PID/ns/net) that the
	// child joins with setns(2) before it drops privileges, so that CRI
	// containers share their pod's namespaces. "pid" only applies to the
	// program's children, as setns(2) defines it.
	//
	// "pid" is entered by the Spawner itself, on the thread that forks, so
	// that the child (and so the program, with no extra process between)
	// is born inside the PID namespace; setns(2) of a PID namespace only
	// ever affects children.
	Namespaces map[string]string

	// NewNamespaces are namespace types ("net", "uts", "ipc", "mnt",
	// "pid", "cgroup") the child is created in (clone flags), for a CRI
	// pod's namespace holder or a container with a PID namespace of its
	// own. A new "net" gets its loopback up, a new "mnt" gets / made a
	// recursive slave so that nothing propagates back to the host.
	NewNamespaces []string
	// Hostname is set in a new UTS namespace; ignored without one, so that
	// the host's name can never be changed by accident.
	Hostname string
	// Init makes the child a minimal init instead of executing Path: it
	// reaps whatever is re-parented to it and lives until killed. Start
	// returns once its set-up is done. It is what holds a pod's namespaces
	// (and is PID 1 of the pod's PID namespace).
	Init bool

	// PrivateMounts gives the child a mount namespace of its own, copied
	// from the one it is in after joining Namespaces, with / made a
	// recursive slave: Mounts and MountProc change only its view.
	PrivateMounts bool
	// Mounts are bind mounts made in the child's own mount namespace
	// (PrivateMounts or a new "mnt") before privileges are dropped.
	Mounts []Mount
	// MountProc mounts a fresh proc on /proc in the child's own mount
	// namespace, so that a child in a PID namespace sees its own PIDs.
	MountProc bool
	// ReadOnlyRoot makes / read-only in the child's own mount namespace,
	// after Mounts (other file systems mounted under / stay as they are).
	ReadOnlyRoot bool

	// Caps, if set, are the capabilities the program runs with: the
	// bounding set is reduced before the user switch, the other sets are
	// set after it. Nil leaves the capabilities alone.
	Caps *Caps

	// TTY, if set, is opened by the child (StandardInput=tty and
	// friends); the fds it covers replace Stdin/Stdout/Stderr.
	TTY *TTY

	// Sysctls (dotted key → value) are written to /proc/sys once the
	// namespaces are joined or created, before any mount: each must
	// belong to a namespace in Namespaces or NewNamespaces (see
	// SysctlNamespace), so the host's kernel is never changed.
	Sysctls map[string]string

	// Seccomp, if set, is loaded just before the user switch (while the
	// child still has CAP_SYS_ADMIN), so it covers the program and all it
	// starts.
	Seccomp Filter
}

// wire is the Spec as the trampoline receives it: files are already in
// place as fds 0, 1, 2, 3..., and the error pipe follows them.
type wire struct {
	Path            string
	Argv            []string
	Env             []string
	Dir             string
	DirOptional     bool
	User, Group     string
	Groups          []string
	Umask           *uint32
	Nice            *int
	OOMScoreAdj     *int
	Rlimits         []Rlimit
	CgroupProcs     []string
	SetListenPID    bool
	Setsid          bool
	NoNewPrivileges bool
	Namespaces      map[string]string
	NewNamespaces   []string
	Hostname        string
	Init            bool
	PrivateMounts   bool
	Mounts          []Mount
	MountProc       bool
	ReadOnlyRoot    bool
	Caps            *Caps
	TTY             *TTY
	Sysctls         map[string]string
	Seccomp         Filter
	ErrFD           int
	Parent          int // the spawning core's PID, see wire.run
}

// Rlimit is one resource limit (unix.RLIMIT_*). It mirrors unit.Rlimit
// rather than importing it: proc is linked into the tiny `corral` binary,
// and the unit parser's tables would cost it half a MiB at every start.
type Rlimit struct {
	Resource int
	Cur, Max uint64
}

// Spawner starts processes through a trampoline binary.
type Spawner struct {
	// Helper is a binary whose main() calls MaybeTrampoline first;
	// "" means /proc/self/exe.
	Helper string

	// forks bounds concurrent fork+exec calls. A thread blocked in
	// vfork makes the Go runtime start another thread, and threads never
	// go away: 500 services started at once would leave the agent with
	// hundreds of idle threads (and their stacks) for the rest of its life.
	// More than one fork per CPU gains nothing anyway.
	forksOnce sync.Once
	forks     chan struct{}
}

func (s *Spawner) forkSlot() func() {
	s.forksOnce.Do(func() { s.forks = make(chan struct{}, runtime.GOMAXPROCS(0)) })
	s.forks <- struct{}{}
	return func() { <-s.forks }
}

// Error is a set-up step of the child that failed. The child has exited (or
// is exiting) with Code, which the reaper will report for its PID.
type Error struct {
	Path string // Spec.Path
	Code int    // systemd EXIT_* code, e.g. ExitChdir
	Msg  string // "<step>: <error>", e.g. "chdir /x: no such file or directory"
}

func (e *Error) Error() string { return "spawn " + e.Path + ": " + e.Msg }

// ack is the first byte every trampoline writes, so that a helper that does
// not call MaybeTrampoline (it would run its own main instead) is told apart
// from a successful exec.
const ack = 0

// Start spawns spec and returns the child's PID after the final execve has
// succeeded. It never waits for the child: its exit belongs to the reaper.
// If a set-up step fails the error is an *Error naming the step, and pid is
// still returned so that the caller can collect the exit (status Code) from
// the reaper.
func (s *Spawner) Start(ctx context.Context, spec *Spec) (pid int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("spawn %s: %w", spec.Path, err)
	}
	helper := s.Helper
	if helper == "" {
		helper = "/proc/self/exe"
	}
	w := wire{
		Path: spec.Path, Argv: spec.Argv, Env: spec.Env, Dir: spec.Dir,
		DirOptional: spec.DirOptional, User: spec.User, Group: spec.Group,
		Groups: spec.SupplementaryGroups, Umask: spec.Umask, Nice: spec.Nice,
		OOMScoreAdj: spec.OOMScoreAdj, Rlimits: spec.Rlimits,
		CgroupProcs: spec.CgroupProcs, SetListenPID: spec.SetListenPID,
		Setsid: spec.Setsid, NoNewPrivileges: spec.NoNewPrivileges,
		NewNamespaces: spec.NewNamespaces, Hostname: spec.Hostname, Init: spec.Init,
		PrivateMounts: spec.PrivateMounts, Mounts: spec.Mounts, MountProc: spec.MountProc,
		ReadOnlyRoot: spec.ReadOnlyRoot, Caps: spec.Caps, TTY: spec.TTY,
		Sysctls: spec.Sysctls, Seccomp: spec.Seccomp,
	}
	// The PID namespace is entered here (see Spec.Namespaces); the child
	// joins the others itself.
	pidNS := spec.Namespaces["pid"]
	for k, v := range spec.Namespaces {
		if k == "pid" {
			continue
		}
		if w.Namespaces == nil {
			w.Namespaces = map[string]string{}
		}
		w.Namespaces[k] = v
	}
	flags, err := cloneFlags(spec.NewNamespaces)
	if err != nil {
		return 0, fmt.Errorf("spawn %s: %w", spec.Path, err)
	}
	if len(w.Argv) == 0 {
		w.Argv = []string{spec.Path}
	}

	var devnull *os.File
	stdio := func(f *os.File) (uintptr, error) {
		if f != nil {
			return f.Fd(), nil
		}
		if devnull == nil {
			var err error
			if devnull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				return 0, err
			}
		}
		return devnull.Fd(), nil
	}
	defer func() {
		if devnull != nil {
			devnull.Close()
		}
	}()
	files := make([]uintptr, 0, 4+len(spec.ExtraFiles))
	for _, f := range []*os.File{spec.Stdin, spec.Stdout, spec.Stderr} {
		fd, err := stdio(f)
		if err != nil {
			return 0, fmt.Errorf("spawn %s: %w", spec.Path, err)
		}
		files = append(files, fd)
	}
	for _, f := range spec.ExtraFiles {
		files = append(files, f.Fd())
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("spawn %s: error pipe: %w", spec.Path, err)
	}
	defer pr.Close()
	w.ErrFD = len(files)
	w.Parent = os.Getpid()
	files = append(files, pw.Fd())
	js, err := json.Marshal(&w)
	if err != nil {
		pw.Close()
		return 0, fmt.Errorf("spawn %s: %w", spec.Path, err)
	}
	release := s.forkSlot()
	fork := func() (int, error) {
		return syscall.ForkExec(helper, []string{"corral-exec"}, &syscall.ProcAttr{
			Env:   []string{envKey + "=" + string(js)},
			Files: files,
			Sys:   &syscall.SysProcAttr{Cloneflags: flags},
		})
	}
	if pidNS != "" {
		pid, err = forkInPIDNamespace(pidNS, fork)
	} else {
		pid, err = fork()
	}
	release()
	pw.Close()
	runtime.KeepAlive(spec) // its files must stay open until the fork duplicated them
	if err != nil {
		return 0, fmt.Errorf("spawn %s: start helper %s: %w", spec.Path, helper, err)
	}

	stop := context.AfterFunc(ctx, func() { pr.SetReadDeadline(time.Now()) })
	defer stop()
	msg, rerr := io.ReadAll(pr)
	if rerr != nil {
		if ctx.Err() != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			return pid, fmt.Errorf("spawn %s: %w", spec.Path, ctx.Err())
		}
		return pid, fmt.Errorf("spawn %s: read error pipe: %w", spec.Path, rerr)
	}
	if len(msg) == 0 || msg[0] != ack {
		return pid, fmt.Errorf("spawn %s: helper %s did not run the trampoline (does its main call proc.MaybeTrampoline first?)", spec.Path, helper)
	}
	if len(msg) == 1 {
		return pid, nil
	}
	return pid, parseFailure(spec.Path, string(msg[1:]))
}

// parseFailure decodes "<code> <step>: <error>" from the trampoline.
func parseFailure(path, s string) error {
	code, rest, _ := strings.Cut(s, " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		return &Error{Path: path, Code: ExitExec, Msg: s}
	}
	return &Error{Path: path, Code: n, Msg: rest}
}

// StartTime returns the start time of pid in clock ticks since boot (field 22
// of /proc/PID/stat). Together with the PID it identifies a process across
// PID reuse, for re-adopting main PIDs after a restart of the agent.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	// comm (field 2) may contain spaces and parentheses: skip past the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("start time of pid %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const field = 22 - 3 // f[0] is field 3 (state)
	if len(f) <= field {
		return 0, fmt.Errorf("start time of pid %d: short stat", pid)
	}
	v, err := strconv.ParseUint(f[field], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	return v, nil
}
