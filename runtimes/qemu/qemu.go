// Package qemu is the runtime backend whose pods are QEMU microVMs: one VM
// per pod, its containers run inside it by the guest agent (guest/, PID 1
// of the VM), and everything the CRI asks of a container (start, exec,
// logs, port-forward) is relayed over one virtio-serial channel with the
// protocol of guest/wire. QEMU itself is a transient service unit of the
// host core in the pod's cgroup, so kubelet's cAdvisor sees its usage and
// `corralctl list-units` shows it; it is controlled over QMP.
//
// Images: the reserved busybox image (ImageName) is always attached; OCI
// images come from containerd, are unpacked once per digest into a
// read-only ext4 and written into one of the VM's spare virtio-blk slots
// at CreateContainer (microvm has no hotplug); the guest gives each
// container an overlay of its image. Network: CNI attaches a namespace of
// the pod's own, QEMU runs in it with virtio-net on a tap bridged to the
// CNI interface, and the guest takes the pod IP (docs/VM.md).
package qemu

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"corral.io/corral/agent/cgroup"
	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/unit"
	"corral.io/corral/runtimes"
	"corral.io/corral/runtimes/cni"
	"corral.io/corral/runtimes/remote"
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
}

// Config is the backend's part of the agent configuration.
type Config struct {
	// Kernel and Initrd are the guest's vmlinux and initramfs (`make
	// vm-assets`: build/vm/vmlinux, build/vm/initrd.img).
	Kernel, Initrd string
	// Image is the ext4 root of ImageName (default busybox.ext4 next to
	// the kernel).
	Image string
	// QEMU is the emulator binary (default qemu-system-x86_64 from PATH).
	QEMU string
	// CgroupBase is where pods without a cgroup_parent go, relative to the
	// cgroup root (default "corral/kubepods").
	CgroupBase string
	// RunDir holds each VM's sockets and console log (default
	// /run/corral/qemu).
	RunDir string
	// BootTimeout bounds RunPodSandbox's wait for the guest agent
	// (default 60 s: TCG on a loaded 2-core machine).
	BootTimeout time.Duration
	// CNIConfDir and CNIBinDirs are libcni's configuration directory and
	// plugin path (defaults /etc/cni/net.d and /usr/lib/cni); without a
	// configuration VM pods boot without a NIC.
	CNIConfDir string
	CNIBinDirs []string
	// Containerd is the socket of the containerd whose CRI image service
	// pulls the images of VM pods (the runc handler's address); empty
	// means only ImageName.
	Containerd string
	// Ctr is containerd's CLI (default ctr from PATH), used to mount an
	// image's snapshot for unpacking.
	Ctr string
	// ImageDir caches one read-only ext4 file per image digest (the agent
	// passes <root>/var/lib/corral/vm-images; default <RunDir>/images).
	ImageDir string
	Log      *slog.Logger
	// Host overrides accelerator detection (tests).
	Host *HostInfo
}

// Defaults for a pod that asks for no resources.
const (
	DefaultMemoryMiB = 128
	DefaultCPUs      = 1
	// Annotations that override the VM's size.
	AnnotationMemory = "corral.io/vm-memory-mib"
	AnnotationCPUs   = "corral.io/vm-cpus"
)

// Backend is the qemu runtime.
type Backend struct {
	units Units
	cg    cgroup.Manager
	cfg   Config
	accel Accel
	log   *slog.Logger
	net   *cni.Network
	// images is containerd's image service (nil: only ImageName).
	images ImageService

	buildMu    sync.Mutex // one image build at a time (TCG hosts have few cores)
	mu         sync.Mutex
	pods       map[string]*pod
	containers map[string]*container
	shutdown   bool // Shutdown was called: no new pods
}

var (
	_ runtimes.Backend          = (*Backend)(nil)
	_ runtimes.Images           = (*Backend)(nil)
	_ runtimes.Execer           = (*Backend)(nil)
	_ runtimes.StreamingRuntime = (*Backend)(nil)
)

// New returns the backend. Missing assets do not fail it: Ready reports
// them, so the handler stays listed with the reason.
func New(m Units, cfg Config) (*Backend, error) {
	if cfg.CgroupBase == "" {
		cfg.CgroupBase = "corral/kubepods"
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/run/corral/qemu"
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.Image == "" && cfg.Kernel != "" {
		cfg.Image = dirOf(cfg.Kernel) + "busybox.ext4"
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 60 * time.Second
	}
	if cfg.CNIConfDir == "" {
		cfg.CNIConfDir = "/etc/cni/net.d"
	}
	if len(cfg.CNIBinDirs) == 0 {
		cfg.CNIBinDirs = []string{"/usr/lib/cni"}
	}
	if cfg.ImageDir == "" {
		cfg.ImageDir = filepath.Join(cfg.RunDir, "images")
	}
	if cfg.Ctr == "" {
		cfg.Ctr = "ctr"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cg, err := cgroup.New("")
	if err != nil {
		return nil, fmt.Errorf("qemu runtime: %w", err)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu runtime: %w", err)
	}
	h := ReadHostInfo()
	if cfg.Host != nil {
		h = *cfg.Host
	}
	b := &Backend{units: m, cg: cg, cfg: cfg, accel: DetectAccel(h), log: cfg.Log.With("backend", "qemu"),
		pods: map[string]*pod{}, containers: map[string]*container{},
		net: cni.New(cfg.CNIConfDir, cfg.CNIBinDirs, filepath.Join(cfg.RunDir, "cni"))}
	if cfg.Containerd != "" {
		rb, err := remote.New(remote.Config{Kind: remote.KindContainerd, Address: cfg.Containerd, Log: b.log})
		if err != nil {
			return nil, fmt.Errorf("qemu runtime: images: %w", err)
		}
		b.images = rb
	}
	b.log.Info("accelerator", "accel", b.accel.Name, "cpu", b.accel.CPU, "why", b.accel.Why)
	return b, nil
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i+1]
		}
	}
	return ""
}

// Name is the backend kind.
func (b *Backend) Name() string { return "qemu" }

// Ready checks that the emulator and the guest assets exist.
func (b *Backend) Ready(ctx context.Context) (bool, string, string) {
	if _, err := exec.LookPath(b.cfg.QEMU); err != nil {
		return false, "QEMUMissing", err.Error()
	}
	for _, f := range []struct{ what, path string }{{"kernel", b.cfg.Kernel}, {"initrd", b.cfg.Initrd}, {"image", b.cfg.Image}} {
		if f.path == "" {
			return false, "VMAssetsMissing", "handler has no " + f.what + " configured (make vm-assets)"
		}
		if _, err := os.Stat(f.path); err != nil {
			return false, "VMAssetsMissing", fmt.Sprintf("%s: %v (make vm-assets)", f.what, err)
		}
	}
	return true, "", ""
}

func notFound(kind, id string) error {
	return fmt.Errorf("%s %s: %w", kind, id, runtimes.ErrNotFound)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", runtimes.ErrInvalid, fmt.Sprintf(format, args...))
}

func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
