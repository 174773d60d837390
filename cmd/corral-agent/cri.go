package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"corral.io/corral/agent/config"
	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/unixsock"
	"corral.io/corral/cri"
	"corral.io/corral/runtimes"
	nativert "corral.io/corral/runtimes/native"
	"corral.io/corral/runtimes/qemu"
	"corral.io/corral/runtimes/remote"
)

// startCRI serves the CRI on <root>/run/corral/cri.sock next to the API,
// with the backends named in <root>/etc/corral/corral.toml. The returned
// stop ends it (and its streaming server) and waits; it may be called
// twice (re-exec, then the end of main). inherited is the socket a previous
// image of the core passed on (daemon-reexec), or nil.
// Native pods without a cgroup_parent go under <cgroupRoot>/kubepods.
func startCRI(root, cgroupRoot, version string, m *manager.Manager, log *slog.Logger, inherited *os.File) (stop func(), l *stoppingListener, err error) {
	log = log.With("subsystem", "cri")
	cfg, err := config.Load(root)
	if err != nil {
		return nil, nil, err
	}
	backends, err := buildBackends(cfg, root, cgroupRoot, m, log)
	if err != nil {
		return nil, nil, err
	}
	srv, err := cri.New(cri.Options{
		Backends: backends, DefaultHandler: cfg.CRI.DefaultHandler, Store: m.DB(),
		StreamAddress: cfg.CRI.StreamAddress, CNIConfDir: cfg.CNI.ConfDir, Version: version, Log: log,
	})
	if err != nil {
		return nil, nil, err
	}
	path := cri.SocketPath(root)
	var sock net.Listener
	if inherited != nil {
		sock, err = unixsock.FromFile(inherited, path)
	} else {
		sock, err = cri.Listen(path)
	}
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	l = newStoppingListener(sock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// Like the API: the socket accepts at once (clients wait in the
		// backlog), calls are served once recovery re-adopted the
		// containers, so that none looks exited meanwhile.
		select {
		case <-m.Ready():
		case <-ctx.Done():
		}
		done <- srv.Serve(ctx, l)
	}()
	log.Info("cri ready", "socket", path, "streaming", srv.StreamAddr(),
		"default_handler", cfg.CRI.DefaultHandler, "handlers", cfg.HandlerNames(), "config", cfg.Path)
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				log.Error("cri server", "err", err)
			}
		})
	}, l, nil
}

// buildBackends builds one backend per configured handler, explicitly (no
// registration). A backend that is not built in yet, or fails to start,
// becomes cri.Unavailable: its handler stays listed and reports why.
func buildBackends(cfg *config.Config, root, cgroupRoot string, m *manager.Manager, log *slog.Logger) (map[string]runtimes.Backend, error) {
	out := map[string]runtimes.Backend{}
	var native runtimes.Backend // one instance serves every native handler
	for _, name := range cfg.HandlerNames() {
		h := cfg.Handlers[name]
		var b runtimes.Backend
		switch h.Backend {
		case config.BackendNative:
			if native == nil {
				nb, err := nativert.New(m, m.DB(), nativert.Config{
					CgroupBase: filepath.Join(cgroupRoot, "kubepods"),
					CNIConfDir: cfg.CNI.ConfDir, CNIBinDirs: []string{cfg.CNI.BinDir},
					RunDir: filepath.Join(root, "run", "corral", "native"),
					Log:    log.With("backend", "native"),
				})
				if err != nil {
					native = cri.Unavailable(h.Backend, err.Error())
				} else {
					native = nb
				}
			}
			b = native
		case config.BackendContainerd, config.BackendIsulad:
			// One client per handler: each has its own address, and the
			// CRI server's ID maps are per handler anyway.
			rb, err := remote.New(remote.Config{Kind: h.Backend, Handler: name, Address: h.Address,
				Log: log.With("backend", h.Backend, "handler", name)})
			if err != nil {
				b = cri.Unavailable(h.Backend, err.Error())
			} else {
				b = rb
			}
		case config.BackendQemu:
			qb, err := qemu.New(m, qemu.Config{Kernel: h.Kernel, Initrd: h.Initrd,
				CgroupBase: filepath.Join(cgroupRoot, "kubepods"),
				RunDir:     filepath.Join(root, "run", "corral", "qemu", name),
				CNIConfDir: cfg.CNI.ConfDir, CNIBinDirs: []string{cfg.CNI.BinDir},
				Containerd: containerdAddress(cfg),
				ImageDir:   filepath.Join(root, "var", "lib", "corral", "vm-images"),
				Log:        log.With("handler", name)})
			if err != nil {
				b = cri.Unavailable(h.Backend, err.Error())
			} else {
				b = qb
				// VM pods still running at shutdown: stop them while CNI
				// plugins can still run (before the manager stops units).
				m.BeforeStop(func(ctx context.Context) {
					if err := qb.Shutdown(ctx); err != nil {
						log.Warn("vm pods at shutdown", "handler", name, "err", err)
					}
				})
			}
		default:
			b = cri.Unavailable(h.Backend, fmt.Sprintf("backend %s is not built into this agent yet", h.Backend))
		}
		if ok, reason, msg := b.Ready(context.Background()); !ok {
			log.Warn("runtime handler not ready", "handler", name, "backend", h.Backend, "reason", reason, "message", msg)
		}
		out[name] = b
	}
	return out, nil
}

// containerdAddress is the socket of the first containerd handler (name
// order): VM pods pull their images through it.
func containerdAddress(cfg *config.Config) string {
	for _, name := range cfg.HandlerNames() {
		if h := cfg.Handlers[name]; h.Backend == config.BackendContainerd {
			return h.Address
		}
	}
	return ""
}
