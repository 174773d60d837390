// Command corral-agent is Corral's core: the unit manager, job engine and API
// server. It is started (and restarted) by `corral init`, which passes the
// flags below; see docs/ARCHITECTURE.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unixsock"
	"corral.io/corral/sysinit"
)

// version is set by the linker for releases.
var version = "0.1.0-dev"

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	proc.MaybeTrampoline()
	os.Exit(run())
}

func run() int {
	var (
		root     = flag.String("root", "/", "root directory for sockets, state, logs and unit search paths")
		unitDirs stringList
		cgroup   = flag.String("cgroup-root", "corral", "cgroup under which every unit's cgroup is created")
		helper   = flag.String("helper", "", "exec trampoline binary (the corral binary); default this binary")
		level    = flag.String("log-level", "info", "debug, info, warn or error")
		target   = flag.String("default-target", "default.target", "unit started at boot; empty starts nothing")
		sysUnits = flag.String("system-units", "auto", "search systemd's unit directories too: yes, no, or auto (only when the supervisor is PID 1)")
		recFD    = flag.Int("exit-records-fd", -1, "inherited fd on which the supervisor streams exit records of processes it reaped (sysinit.Record)")
	)
	flag.Var(&unitDirs, "unit-dir", "extra unit directory searched first (repeatable)")
	flag.Parse()

	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "corral-agent: --log-level %q: %v\n", *level, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("component", "agent")
	slog.SetDefault(log)

	// Under `corral init` (not PID 1): if the supervisor dies, so do we,
	// after stopping our units, rather than running on unsupervised.
	if os.Getppid() != 1 {
		unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	}

	// Forking daemons re-parent to the nearest subreaper: that must be us,
	// so that their exits reach the service state machines.
	if err := reaper.SetSubreaper(); err != nil {
		log.Error("set child subreaper", "err", err)
		return 1
	}

	// After daemon-reexec/upgrade: the previous image's listening sockets.
	inherited, err := unixsock.Inherited()
	if err != nil {
		log.Error("inherited sockets", "err", err)
		return 1
	}
	cfg := manager.Config{Root: *root, UnitDirs: unitDirs, CgroupBase: *cgroup, Helper: *helper, Log: log, Notify: inherited["notify"], Trim: sysinit.Trim}
	if *recFD > 2 {
		// Not for the services we spawn: close-on-exec before anything forks.
		unix.CloseOnExec(*recFD)
		cfg.ExitRecords = os.NewFile(uintptr(*recFD), "exit-records")
	}
	// Started by PID 1: run the boot steps (docs/BOOT.md) before the default target.
	cfg.Boot = os.Getppid() == 1
	switch *sysUnits {
	case "yes":
		cfg.SystemUnits = true
	case "no":
	case "auto":
		cfg.SystemUnits = os.Getppid() == 1
	default:
		fmt.Fprintf(os.Stderr, "corral-agent: --system-units %q: want yes, no or auto\n", *sysUnits)
		return 2
	}
	switch {
	case *helper != "" && os.Getppid() == 1:
		// Started by sysinit as PID 1: the machine's power state is its
		// call. It stops us in order, then calls reboot(2).
		actions := map[string]sysinit.Action{"poweroff": sysinit.ActionPoweroff, "reboot": sysinit.ActionReboot, "halt": sysinit.ActionHalt}
		cfg.OnShutdown = func(action string) {
			a, ok := actions[action]
			if !ok { // "exit": PID 1 restarts the core
				syscall.Kill(os.Getpid(), syscall.SIGTERM)
				return
			}
			log.Info("shutdown requested; asking PID 1", "action", action)
			syscall.Kill(1, sysinit.SignalFor(a))
		}
	case *helper != "":
		// Started by `corral init`: shutting down is the supervisor's call,
		// or it would restart us. It answers SIGTERM by stopping us in order.
		cfg.OnShutdown = func(action string) {
			log.Info("shutdown requested; asking the supervisor", "action", action, "ppid", os.Getppid())
			syscall.Kill(os.Getppid(), syscall.SIGTERM)
		}
	}
	m, err := manager.New(cfg)
	if err != nil {
		log.Error("start manager", "root", *root, "err", err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	go func() {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		for range hup {
			if err := m.DaemonReload(ctx); err != nil {
				log.Error("daemon-reload on SIGHUP", "err", err)
			}
		}
	}()

	sockPath := apiserver.SocketPath(*root)
	var l net.Listener
	if f := inherited["api"]; f != nil {
		l, err = unixsock.FromFile(f, sockPath)
	} else {
		l, err = apiserver.Listen(sockPath)
	}
	if err != nil {
		log.Error("api socket", "path", sockPath, "err", err)
		return 1
	}
	apiL := newStoppingListener(l)
	rx := &reexecer{m: m, log: log, recFD: *recFD, exec: syscall.Exec}
	srv := apiserver.New(agentAPI{m, rx}, apiserver.Options{Log: log, Version: version})
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() {
		// The socket accepts at once (clients queue in the backlog), but
		// calls are served only after the manager re-adopted the units a
		// previous core left (manager.Ready).
		select {
		case <-m.Ready():
		case <-ctx.Done():
		}
		srvDone <- srv.Serve(srvCtx, apiL)
	}()
	var apiOnce sync.Once
	var apiErr error
	stopAPI := func() {
		apiOnce.Do(func() { stopSrv(); apiErr = <-srvDone })
	}
	rx.servers = append(rx.servers, server{name: "api", l: apiL, stop: stopAPI})
	// A broken CRI configuration must not cost the node its units: the
	// agent runs on without the CRI socket and says why.
	stopCRI, criL, err := startCRI(*root, *cgroup, version, m, log, inherited["cri"])
	if err != nil {
		log.Error("cri not started", "err", err)
		if f := inherited["cri"]; f != nil {
			f.Close()
		}
		stopCRI = func() {}
	} else {
		rx.servers = append(rx.servers, server{name: "cri", l: criL, stop: stopCRI})
	}
	log.Info("corral agent ready", "root", *root, "api", sockPath, "pid", os.Getpid())

	err = m.Run(ctx, *target)
	stopCRI()
	stopAPI()
	if apiErr != nil {
		log.Error("api server", "err", apiErr)
	}
	if err != nil {
		log.Error("manager", "err", err)
		return 1
	}
	log.Info("corral agent stopped")
	return 0
}
