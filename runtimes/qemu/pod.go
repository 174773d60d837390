package qemu

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// pod is a VM pod in memory. VMs do not survive an agent restart in this
// slice, so nothing is persisted.
type pod struct {
	id        string
	cfg       *runtimeapi.PodSandboxConfig
	handler   string
	createdAt int64
	cgroup    string // the pod's cgroup, relative to the root
	ownCgroup bool
	state     runtimeapi.PodSandboxState
	vm        *vm
	net       *podNet // nil without CNI

	// slots are the spare disks (img1...), slotOf maps an image ID to
	// its drive index; slotMu serialises filling them.
	slotMu sync.Mutex
	slots  []string
	slotOf map[string]int
}

// Size is a VM's memory and CPU count: the pod's resources (the sum of its
// containers' limits, which kubelet passes in linux.resources), else the
// defaults; the annotations win over both.
func Size(cfg *runtimeapi.PodSandboxConfig) (memMiB, cpus int, err error) {
	memMiB, cpus = DefaultMemoryMiB, DefaultCPUs
	if r := cfg.GetLinux().GetResources(); r != nil {
		if l := r.GetMemoryLimitInBytes(); l > 0 {
			memMiB = max(int((l+(1<<20)-1)>>20), 64)
		}
		if q, p := r.GetCpuQuota(), r.GetCpuPeriod(); q > 0 && p > 0 {
			cpus = int((q + p - 1) / p)
		}
	}
	for key, dst := range map[string]*int{AnnotationMemory: &memMiB, AnnotationCPUs: &cpus} {
		if v, ok := cfg.GetAnnotations()[key]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return 0, 0, invalid("annotation %s=%q is not a positive integer", key, v)
			}
			*dst = n
		}
	}
	return memMiB, cpus, nil
}

// runDir holds the VM's sockets: named by a prefix of the pod ID, since a
// unix socket path must stay under 108 bytes.
func (b *Backend) runDir(id string) string {
	return filepath.Join(b.cfg.RunDir, id[:min(len(id), 16)])
}

func (b *Backend) podCgroup(id string, cfg *runtimeapi.PodSandboxConfig) (string, bool, error) {
	parent := cfg.GetLinux().GetCgroupParent()
	if parent == "" {
		return path.Join(b.cfg.CgroupBase, id), true, nil
	}
	if strings.HasSuffix(parent, ".slice") && !strings.Contains(parent, "/") {
		return "", false, invalid("cgroup_parent %q is a systemd slice; Corral uses the cgroupfs driver", parent)
	}
	clean := path.Clean("/" + parent)
	if clean == "/" {
		return "", false, invalid("cgroup_parent %q is not a cgroup path", parent)
	}
	return strings.TrimPrefix(clean, "/"), false, nil
}

// RunPodSandbox boots the pod's VM and returns once its agent answers.
func (b *Backend) RunPodSandbox(ctx context.Context, id string, cfg *runtimeapi.PodSandboxConfig, handler string) (_ string, retErr error) {
	if ok, _, msg := b.Ready(ctx); !ok {
		return "", fmt.Errorf("pod sandbox %s: %w: %s", id, runtimes.ErrUnavailable, msg)
	}
	if err := b.refuseAfterShutdown(id); err != nil {
		return "", err
	}
	if ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns.GetNetwork() == runtimeapi.NamespaceMode_NODE ||
		ns.GetPid() == runtimeapi.NamespaceMode_NODE || ns.GetIpc() == runtimeapi.NamespaceMode_NODE {
		return "", invalid("pod sandbox %s: a VM pod cannot share the host's network, PID or IPC namespace", id)
	}
	mem, cpus, err := Size(cfg)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	_, dup := b.pods[id]
	b.mu.Unlock()
	if dup {
		return "", fmt.Errorf("pod sandbox %s: %w", id, runtimes.ErrExists)
	}
	cg, own, err := b.podCgroup(id, cfg)
	if err != nil {
		return "", err
	}
	if err := b.cg.Create(cg); err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	dir := b.runDir(id)
	var pn *podNet
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if err := b.teardownNet(cctx, id, cfg, pn); err != nil {
				b.log.Warn("pod network teardown", "pod", id, "err", err)
			}
			cancel()
			os.RemoveAll(dir)
			if own {
				b.cg.Remove(cg)
			}
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	m := Machine{Kernel: b.cfg.Kernel, Initrd: b.cfg.Initrd, MemoryMiB: mem, CPUs: cpus,
		AgentSocket: filepath.Join(dir, "agent.sock"), QMPSocket: filepath.Join(dir, "qmp.sock"),
		Console: filepath.Join(dir, "console.log")}
	slots, err := createSlots(dir)
	if err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	m.Images = append([]string{b.cfg.Image}, slots...)
	if b.hasCNI() {
		pn, err = b.setupNet(ctx, id, filepath.Join(dir, "netns"), cfg)
		if err != nil {
			return "", fmt.Errorf("pod sandbox %s: %w", id, err)
		}
		m.MAC, m.Cmdline, m.NetNS = pn.att.MAC, pn.Cmdline(), pn.ns
	}
	v, err := b.bootVM(ctx, id, path.Join(cg, "vm"), m)
	if err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	p := &pod{id: id, cfg: cfg, handler: handler, createdAt: time.Now().UnixNano(), cgroup: cg, ownCgroup: own,
		state: runtimeapi.PodSandboxState_SANDBOX_READY, vm: v, net: pn,
		slots: slots, slotOf: map[string]int{}}
	b.mu.Lock()
	late := b.shutdown
	if !late {
		b.pods[id] = p
	}
	b.mu.Unlock()
	if late { // Shutdown ran while this VM booted and did not see it
		b.stopVM(context.WithoutCancel(ctx), v, 5*time.Second)
		return "", b.refuseAfterShutdown(id)
	}
	go b.watchVM(p, v)
	return id, nil
}

// watchVM marks the pod NotReady and its containers exited when QEMU ends
// on its own (killed, guest panic).
func (b *Backend) watchVM(p *pod, v *vm) {
	<-v.exited
	b.mu.Lock()
	defer b.mu.Unlock()
	p.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	for _, c := range b.containers {
		if c.podID == p.id && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.exitLocked(255, "VMExited", "the pod's VM exited")
		}
	}
}

func (b *Backend) getPod(id string) (*pod, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pods[id]
	if p == nil {
		return nil, notFound("pod sandbox", id)
	}
	return p, nil
}

// StopPodSandbox shuts the VM down; idempotent.
func (b *Backend) StopPodSandbox(ctx context.Context, id string) error {
	p, err := b.getPod(id)
	if err != nil {
		return err
	}
	b.mu.Lock()
	v := p.vm
	p.vm = nil
	p.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	for _, c := range b.containers {
		if c.podID == id && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.exitLocked(137, "Killed", "the pod was stopped")
		}
	}
	b.mu.Unlock()
	b.stopVM(ctx, v, 5*time.Second)
	b.mu.Lock()
	pn := p.net
	b.mu.Unlock()
	if err := b.teardownNet(ctx, id, p.cfg, pn); err != nil {
		return fmt.Errorf("pod sandbox %s: network: %w", id, err)
	}
	return nil
}

// RemovePodSandbox stops the pod if needed and forgets it, with its
// containers, cgroup and run directory.
func (b *Backend) RemovePodSandbox(ctx context.Context, id string) error {
	p, err := b.getPod(id)
	if err != nil {
		return nil // already gone
	}
	if err := b.StopPodSandbox(ctx, id); err != nil {
		return err
	}
	b.mu.Lock()
	for cid, c := range b.containers {
		if c.podID == id {
			c.closeLog()
			delete(b.containers, cid)
		}
	}
	delete(b.pods, id)
	b.mu.Unlock()
	os.RemoveAll(b.runDir(id))
	if p.ownCgroup {
		if err := b.cg.Remove(p.cgroup); err != nil {
			return fmt.Errorf("pod sandbox %s: %w", id, err)
		}
	} else {
		b.cg.Remove(path.Join(p.cgroup, "vm"))
	}
	return nil
}

func (b *Backend) sandboxLocked(p *pod) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id: p.id, Metadata: p.cfg.GetMetadata(), State: p.state, CreatedAt: p.createdAt,
		Labels: p.cfg.GetLabels(), Annotations: p.cfg.GetAnnotations(), RuntimeHandler: p.handler,
	}
}

// PodSandboxStatus reports the pod; verbose adds the VM's facts.
func (b *Backend) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	p, err := b.getPod(id)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := &runtimeapi.PodSandboxStatus{
		Id: p.id, Metadata: p.cfg.GetMetadata(), State: p.state, CreatedAt: p.createdAt,
		Network: &runtimeapi.PodSandboxNetworkStatus{},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: p.cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
		Labels: p.cfg.GetLabels(), Annotations: p.cfg.GetAnnotations(), RuntimeHandler: p.handler,
	}
	if p.net != nil {
		ips := p.net.att.IPs()
		st.Network.Ip = ips[0]
		for _, ip := range ips[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if verbose {
		info := map[string]string{"accelerator": b.accel.Name, "cgroup": p.cgroup}
		if p.vm != nil {
			info["unit"] = p.vm.unit
			info["guestKernel"] = p.vm.kernel
			info["bootTime"] = p.vm.booted.String()
		}
		resp.Info = info
	}
	return resp, nil
}

// ListPodSandbox lists the pods matching filter.
func (b *Backend) ListPodSandbox(ctx context.Context, f *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, p := range b.pods {
		if f.GetId() != "" && f.GetId() != p.id {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != p.state {
			continue
		}
		if !matchLabels(p.cfg.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, b.sandboxLocked(p))
	}
	return out, nil
}
