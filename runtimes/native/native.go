// Package native is the runtime backend whose pods are plain host
// processes: a pod is a cgroup (under kubelet's cgroup_parent), and every
// container is a transient service unit of Corral's unit engine, so it shows
// in `corralctl list-units`, `status` and `logs` like any other service.
//
// The image is always the host's root filesystem, under the reserved name
// localhost/corral/host:latest. A pod shares the host's network unless it
// asks for its own: then a small holder process keeps new network, IPC, UTS
// and mount namespaces alive, CNI configures the network one, and every
// container joins them (proc.Spec.Namespaces) before it execs.
package native

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/cgroup"
	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/unit"
	"corral.io/corral/runtimes"
	"corral.io/corral/runtimes/cni"
)

// Units is what the backend needs of the unit manager; *manager.Manager
// satisfies it.
type Units interface {
	ParseTransient(name, text string) *unit.Unit
	AddTransient(u *unit.Unit, opts manager.TransientOptions) error
	StartUnit(ctx context.Context, name string) error
	StopUnit(ctx context.Context, name string, timeout time.Duration) error
	RemoveTransient(name string) error
	UnitState(name string) (service.Status, bool)
	Spawner() *proc.Spawner
	Reaper() *reaper.Reaper
	LogStore() *logs.Store
}

// Store keeps the pod and container records; *state.DB satisfies it.
type Store interface {
	Put(bucket, key string, v any) error
	Get(bucket, key string, v any) (bool, error)
	Delete(bucket, key string) error
	List(bucket string, fn func(key string, data json.RawMessage) error) error
}

// Config is the backend's part of the agent configuration.
type Config struct {
	// CgroupBase is where pods without a cgroup_parent go, relative to the
	// cgroup root (default "corral/kubepods").
	CgroupBase string
	// CNIConfDir and CNIBinDirs are libcni's configuration directory and
	// plugin path (defaults /etc/cni/net.d and /usr/lib/cni).
	CNIConfDir string
	CNIBinDirs []string
	// RunDir keeps CNI's cache (default <root>/run/corral/native, given
	// by the caller).
	RunDir string
	Log    *slog.Logger
}

// Buckets of the state DB.
const (
	bucketPods       = "native-pods"
	bucketContainers = "native-containers"
)

// Backend is the native runtime.
type Backend struct {
	units Units
	db    Store
	cg    cgroup.Manager // rooted at the hierarchy root: kubelet gives absolute parents
	cfg   Config
	log   *slog.Logger
	net   *cni.Network

	mu         sync.Mutex
	pods       map[string]*pod
	containers map[string]*container
	subs       map[chan *runtimeapi.ContainerEventResponse]struct{}
}

var (
	_ runtimes.Backend          = (*Backend)(nil)
	_ runtimes.Images           = (*Backend)(nil)
	_ runtimes.Execer           = (*Backend)(nil)
	_ runtimes.Stats            = (*Backend)(nil)
	_ runtimes.Updater          = (*Backend)(nil)
	_ runtimes.LogReopener      = (*Backend)(nil)
	_ runtimes.Events           = (*Backend)(nil)
	_ runtimes.StreamingRuntime = (*Backend)(nil)
	_ runtimes.NetworkReadier   = (*Backend)(nil)
)

// New returns the backend on top of the unit manager m and the state store
// db (the manager's DB), and loads the records of earlier runs.
func New(m Units, db Store, cfg Config) (*Backend, error) {
	if cfg.CgroupBase == "" {
		cfg.CgroupBase = "corral/kubepods"
	}
	if cfg.CNIConfDir == "" {
		cfg.CNIConfDir = "/etc/cni/net.d"
	}
	if len(cfg.CNIBinDirs) == 0 {
		cfg.CNIBinDirs = []string{"/usr/lib/cni"}
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/corral/native"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cg, err := cgroup.New("")
	if err != nil {
		return nil, fmt.Errorf("native runtime: %w", err)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("native runtime: %w", err)
	}
	b := &Backend{
		units: m, db: db, cg: cg, cfg: cfg, log: cfg.Log.With("backend", "native"),
		net:        cni.New(cfg.CNIConfDir, cfg.CNIBinDirs, filepath.Join(cfg.RunDir, "cni")),
		pods:       map[string]*pod{},
		containers: map[string]*container{},
		subs:       map[chan *runtimeapi.ContainerEventResponse]struct{}{},
	}
	if err := b.load(); err != nil {
		return nil, err
	}
	b.recoverContainers()
	return b, nil
}

// Name is the backend kind.
func (b *Backend) Name() string { return "native" }

// Ready: the native runtime needs nothing beyond the agent itself.
func (b *Backend) Ready(ctx context.Context) (bool, string, string) { return true, "", "" }

// NetworkReady: host-network pods always work; pod networks need a CNI
// configuration.
func (b *Backend) NetworkReady(ctx context.Context) (bool, string, string) {
	if _, err := b.net.Config(); err != nil {
		return false, "NetworkPluginNotReady", err.Error()
	}
	return true, "", ""
}

// load reads the records of an earlier run. Their processes, if any, are
// the manager's business; what is lost across an agent restart (the
// container units) shows as exited containers.
func (b *Backend) load() error {
	err := b.db.List(bucketPods, func(key string, data json.RawMessage) error {
		p := &pod{}
		if err := json.Unmarshal(data, &p.rec); err != nil {
			b.log.Warn("skipping a bad pod record", "id", key, "err", err)
			return nil
		}
		b.pods[key] = p
		return nil
	})
	if err != nil {
		return fmt.Errorf("native runtime: load pods: %w", err)
	}
	err = b.db.List(bucketContainers, func(key string, data json.RawMessage) error {
		c := &container{}
		if err := json.Unmarshal(data, &c.rec); err != nil {
			b.log.Warn("skipping a bad container record", "id", key, "err", err)
			return nil
		}
		if c.rec.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.rec.State = runtimeapi.ContainerState_CONTAINER_EXITED
			c.rec.Reason = "Unknown"
		}
		b.containers[key] = c
		return nil
	})
	if err != nil {
		return fmt.Errorf("native runtime: load containers: %w", err)
	}
	return nil
}

func notFound(kind, id string) error {
	return fmt.Errorf("%s %s: %w", kind, id, runtimes.ErrNotFound)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", runtimes.ErrInvalid, fmt.Sprintf(format, args...))
}
