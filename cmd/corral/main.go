// Command corral is the small binary of Corral: the supervisor (`corral
// init`, and PID 1) and the exec trampoline for spawned processes. It
// imports only the standard library, golang.org/x/sys and Corral packages
// that do the same (enforced by TestDeps), because whatever it links costs
// memory on every node before anything runs. Everything else lives in
// corral-agent, found next to this binary.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"corral.io/corral/agent/proc"
	"corral.io/corral/sysinit"
)

const agentName = "corral-agent"

func main() {
	// Spawned services start as this binary and become themselves here,
	// before anything else runs.
	proc.MaybeTrampoline()
	os.Exit(run(os.Args))
}

// run dispatches on argv and returns the exit code.
func run(args []string) (code int) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	defer func() {
		if r := recover(); r != nil {
			log.Error("corral panicked", "panic", r, "stack", string(debug.Stack()))
			code = 2
		}
	}()
	if os.Getpid() == 1 {
		return pid1(log, args)
	}
	if len(args) > 0 {
		if a, ok := multiCall(args[0]); ok {
			if err := askInit(syscall.Kill, a); err != nil {
				os.Stderr.WriteString(filepath.Base(args[0]) + ": signal PID 1: " + err.Error() + "\n")
				return 1
			}
			return 0
		}
	}
	if len(args) < 2 {
		usage()
		return 2
	}
	switch args[1] {
	case "init":
		return initCmd(args[2:])
	case "agent":
		return agentCmd(log, args[2:])
	case "-h", "--help", "help":
		usage()
		return 0
	}
	os.Stderr.WriteString("corral: unknown command " + args[1] + "\n")
	usage()
	return 2
}

func usage() {
	os.Stderr.WriteString(`usage:
  corral init --root DIR [--unit-dir DIR]... [--agent PATH] [--cgroup-root NAME]
              [--log-level LEVEL] [--stop-timeout DURATION] [--default-target UNIT]
  corral agent ARGS...      exec corral-agent (next to this binary) with ARGS
  poweroff | reboot | halt  (as argv[0], via symlinks) ask PID 1 to do so
As PID 1 (init=/usr/sbin/corral) it boots the machine: see docs/PID1.md.
`)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func initCmd(args []string) int {
	fs := flag.NewFlagSet("corral init", flag.ContinueOnError)
	var cfg sysinit.Config
	var units stringList
	fs.StringVar(&cfg.Root, "root", "", "root directory of the node (/ in production)")
	fs.Var(&units, "unit-dir", "extra unit directory searched first (repeatable)")
	fs.StringVar(&cfg.Agent, "agent", "", "path of corral-agent (default: next to this binary)")
	fs.StringVar(&cfg.CgroupRoot, "cgroup-root", "", "cgroup name prefix for everything Corral creates")
	fs.StringVar(&cfg.LogLevel, "log-level", "", "log level: debug, info, warn, error")
	fs.StringVar(&cfg.Target, "default-target", "", "unit the core starts first (core default: default.target)")
	fs.DurationVar(&cfg.StopTimeout, "stop-timeout", sysinit.DefaultStopTimeout, "how long the agent may take to stop on shutdown")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.Root == "" || fs.NArg() != 0 {
		os.Stderr.WriteString("corral init: --root is required and no arguments are accepted\n")
		return 2
	}
	var level slog.Level
	if cfg.LogLevel != "" {
		if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
			os.Stderr.WriteString("corral init: --log-level: " + err.Error() + "\n")
			return 2
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "sysinit")

	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find own binary", "err", err)
		return 1
	}
	cfg.Helper = self
	if cfg.Agent == "" {
		cfg.Agent = filepath.Join(filepath.Dir(self), agentName)
	}
	// Absolute paths: the agent may chdir, and --root must not depend on
	// where `corral init` happened to be started.
	for _, p := range append([]*string{&cfg.Root, &cfg.Agent}, ptrs(units)...) {
		if a, err := filepath.Abs(*p); err == nil {
			*p = a
		}
	}
	cfg.UnitDirs = units
	cfg.Log = log
	// The supervisor is one goroutine that mostly sleeps; one P and a
	// tighter GC trim its idle RSS (measured: about 150 KiB of 3 MiB).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	debug.SetGCPercent(20)
	if err := sysinit.NoHugePages(); err != nil {
		log.Warn("transparent huge pages stay on", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sysinit.TrimAfter(ctx, func() { log.Debug("memory trimmed") }, time.Second, 5*time.Second, 25*time.Second, 90*time.Second)
	if err := sysinit.New(cfg).Run(ctx); err != nil {
		log.Error("supervisor failed", "err", err)
		return 1
	}
	return 0
}

func ptrs(l []string) []*string {
	p := make([]*string, len(l))
	for i := range l {
		p[i] = &l[i]
	}
	return p
}

// agentCmd replaces this process with corral-agent, so that `corral agent`
// works wherever the two binaries are installed side by side.
func agentCmd(log *slog.Logger, args []string) int {
	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find own binary", "err", err)
		return 1
	}
	path := filepath.Join(filepath.Dir(self), agentName)
	err = syscall.Exec(path, append([]string{path}, args...), os.Environ())
	log.Error("exec agent", "path", path, "err", err)
	return 1
}
