package service

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/unit"
)

// spawn starts the current command of c. A pid > 0 with an error means the
// child started but failed its set-up; its exit (with systemd's EXIT_* code)
// follows through the reaper like any other.
func (s *Service) spawn(c *cmdRun, main bool) (int, error) {
	cmd := c.cur()
	spec, closers, err := s.spec(cmd, c.kind, main)
	defer func() {
		for _, f := range closers {
			_ = f.Close()
		}
	}()
	if err != nil {
		s.core("Failed to spawn '%s' task %s: %v", c.kind, cmd.Path, err)
		return 0, err
	}
	if s.d.Spawner == nil {
		return 0, fmt.Errorf("unit %s: no spawner", s.u.Name)
	}
	// The spawn must not be cut short by whoever triggered this phase: a
	// reaped exit or a timer has no ctx, and a Start caller giving up does
	// not cancel the unit.
	pid, err := s.d.Spawner.Start(context.Background(), spec)
	if err != nil {
		s.core("Failed to execute %s: %v", cmd.Path, err)
		s.log.Warn("spawn", "kind", c.kind, "path", cmd.Path, "pid", pid, "err", err)
		return pid, fmt.Errorf("unit %s: %s %s: %w", s.u.Name, c.kind, cmd.Path, err)
	}
	s.log.Debug("spawned", "kind", c.kind, "path", cmd.Path, "pid", pid)
	return pid, nil
}

// spec builds the proc.Spec of one command: environment, argv expansion,
// credentials, stdio and, for the main process, socket activation fds.
func (s *Service) spec(cmd unit.Command, kind string, main bool) (*proc.Spec, []*os.File, error) {
	svc := s.svc()
	var files []*os.File
	var extra []*os.File
	var names []string
	if main {
		if s.d.Conn != nil {
			extra, names = []*os.File{s.d.Conn}, []string{"connection"}
		} else if s.d.SocketFiles != nil {
			extra, names = s.d.SocketFiles()
		}
	}
	env, err := s.environment(kind, main, len(extra), names)
	if err != nil {
		return nil, nil, err
	}
	argv := cmd.Args
	if len(argv) == 0 {
		argv = []string{cmd.Path}
	}
	if cmd.Flags&unit.NoEnvExpand == 0 {
		argv = append([]string{argv[0]}, expandArgs(argv[1:], envMap(env))...)
	}
	sp := &proc.Spec{
		Path:                cmd.Path,
		Argv:                argv,
		Env:                 env,
		Dir:                 svc.WorkingDirectory,
		DirOptional:         svc.WorkingDirOptional,
		User:                svc.User,
		Group:               svc.Group,
		SupplementaryGroups: svc.SupplementaryGroups,
		Umask:               svc.UMask,
		Nice:                svc.Nice,
		OOMScoreAdj:         svc.OOMScoreAdjust,
		Rlimits:             rlimits(svc.Limits),
		ExtraFiles:          extra,
		SetListenPID:        len(extra) > 0,
		Setsid:              true,
		NoNewPrivileges:     svc.NoNewPrivileges,
	}
	if cmd.Flags&unit.FullPrivileges != 0 {
		sp.User, sp.Group, sp.SupplementaryGroups = "", "", nil
		sp.NoNewPrivileges = false
	}
	if sp.Dir == "~" {
		sp.Dir = "/root"
		if svc.User != "" && cmd.Flags&unit.FullPrivileges == 0 {
			if u, err := lookupUser(svc.User); err == nil {
				sp.Dir = u.home
			}
		}
	}
	if s.d.Cgroups != nil && s.d.Cgroup != "" {
		sp.CgroupProcs = s.d.Cgroups.ProcsFiles(s.d.Cgroup)
	}
	sp.TTY = ttySpec(&svc.Exec)
	if err := s.stdio(sp, &files); err != nil {
		for _, f := range files {
			_ = f.Close()
		}
		return nil, nil, err
	}
	if s.d.Adjust != nil {
		out, errf := sp.Stdout, sp.Stderr
		s.d.Adjust(sp, kind, main)
		keepHookedReaders(sp, out, errf, &files)
	}
	return sp, files, nil
}

// stdio opens StandardInput/Output/Error; opened files are appended to
// files for the caller to close after the spawn.
func (s *Service) stdio(sp *proc.Spec, files *[]*os.File) error {
	svc := s.svc()
	if svc.StandardInput == "socket" {
		if s.d.Conn == nil {
			return fmt.Errorf("unit %s: StandardInput=socket without a connection (needs an Accept=yes socket)", s.u.Name)
		}
		sp.Stdin = s.d.Conn
	}
	out, err := s.output(svc.StandardOutput, logs.Stdout, sp, files)
	if err != nil {
		return err
	}
	sp.Stdout = out
	if k := svc.StandardError.Kind; k == "" || k == "inherit" {
		switch svc.StandardOutput.Kind {
		case "", "journal", "kmsg", "syslog", "journal+console", "kmsg+console", "syslog+console":
			// Same destination as stdout, but its own stream so that logs
			// tell stderr apart.
			sp.Stderr, err = s.output(svc.StandardOutput, logs.Stderr, sp, files)
		default:
			sp.Stderr = sp.Stdout
		}
	} else {
		sp.Stderr, err = s.output(svc.StandardError, logs.Stderr, sp, files)
	}
	return err
}

func (s *Service) output(o unit.Output, stream logs.Stream, sp *proc.Spec, files *[]*os.File) (*os.File, error) {
	directive := "StandardOutput"
	if stream == logs.Stderr {
		directive = "StandardError"
	}
	open := func(flag int) (*os.File, error) {
		f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
		if err != nil {
			return nil, fmt.Errorf("unit %s: %s=%s:%s: %w", s.u.Name, directive, o.Kind, o.Path, err)
		}
		*files = append(*files, f)
		return f, nil
	}
	switch o.Kind {
	case "null", "tty":
		return nil, nil
	case "inherit", "socket":
		return sp.Stdin, nil
	case "file":
		return open(0)
	case "append":
		return open(os.O_APPEND)
	case "truncate":
		return open(os.O_TRUNC)
	}
	// "", journal, kmsg, syslog and their +console forms.
	if s.d.Logs == nil {
		return nil, nil
	}
	return s.logPipe(stream, sp, files)
}

// ttySpec is the terminal part of StandardInput=/StandardOutput=/
// StandardError= and the TTY*= settings; nil when the unit has none. The
// child opens the terminal itself (proc.TTY).
func ttySpec(x *unit.Exec) *proc.TTY {
	t := &proc.TTY{Path: x.TTYPath, Reset: x.TTYReset, VHangup: x.TTYVHangup, VTDisallocate: x.TTYVTDisallocate}
	switch x.StandardInput {
	case "tty":
		t.Stdin, t.Acquire = true, proc.AcquireWait
	case "tty-force":
		t.Stdin, t.Acquire = true, proc.AcquireForce
	case "tty-fail":
		t.Stdin, t.Acquire = true, proc.AcquireFail
	}
	onTTY := func(k string) bool { return k == "tty" || (k == "inherit" && t.Stdin) }
	t.Stdout = onTTY(x.StandardOutput.Kind)
	if k := x.StandardError.Kind; k == "" || k == "inherit" {
		t.Stderr = t.Stdout
	} else {
		t.Stderr = onTTY(k)
	}
	if !t.Stdin && !t.Stdout && !t.Stderr && !t.Reset && !t.VHangup && !t.VTDisallocate {
		return nil
	}
	return t
}

// core writes one of Corral's own lines about the unit into its log, as
// systemd's journal interleaves them with the unit's output.
func (s *Service) core(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Info(msg)
	if s.d.Logs != nil {
		if err := s.d.Logs.Append(s.u.Name, logs.Core, msg); err != nil {
			s.log.Warn("log append", "err", err)
		}
	}
}

// readPIDFile reads PIDFile=, a host path written by a forking daemon.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("PID file %s: invalid content %q", path, strings.TrimSpace(string(b)))
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		return 0, fmt.Errorf("PID file %s: process %d: %w", path, pid, err)
	}
	return pid, nil
}

func procName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// rlimits converts the unit's Limit*= settings for proc.
func rlimits(ls []unit.Rlimit) []proc.Rlimit {
	out := make([]proc.Rlimit, len(ls))
	for i, l := range ls {
		out[i] = proc.Rlimit(l)
	}
	return out
}
