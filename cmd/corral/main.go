// Command corral is the small binary of Corral: the supervisor (`corral
// init`, later PID 1) and the exec trampoline for spawned processes. It
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
`)
}

// pid1 is the seam for running as the machine's init: early mounts,
// hostname, ctrl-alt-del, reboot(2). It comes in a later issue; until then
// we refuse rather than half-work, since returning from PID 1 panics the
// kernel.
func pid1(log *slog.Logger, _ []string) int {
	log.Error("running as PID 1 is not implemented yet")
	for {
		time.Sleep(time.Hour) // never return: exiting PID 1 panics the kernel
	}
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
	if err := sysinit.New(cfg).Run(context.Background()); err != nil {
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
