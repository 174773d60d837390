package native

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/reaper"
	"corral.io/corral/runtimes"
)

// podRecord is what the state DB keeps of a pod.
type podRecord struct {
	Version     int
	ID          string
	Config      []byte // runtimeapi.PodSandboxConfig, protobuf
	Handler     string
	State       runtimeapi.PodSandboxState
	CreatedAt   int64    // ns since the epoch
	Cgroup      string   // relative to the cgroup root
	OwnCgroup   bool     // created by us (no cgroup_parent), so removed by us
	HolderPID   int      // namespace holder, 0 when the pod shares every host namespace
	HolderStart uint64   // its start time, against PID reuse
	Namespaces  []string // held by the holder: net, uts, ipc, pid, mnt
	PIDMode     runtimeapi.NamespaceMode
	CNI         bool
	IPs         []string
}

// pod is a pod in memory.
type pod struct {
	rec    podRecord
	cfg    *runtimeapi.PodSandboxConfig
	holder <-chan reaper.Exit // nil after an agent restart
}

// nsPaths are the namespace files containers join.
func (p *pod) nsPaths() map[string]string {
	if p.rec.HolderPID == 0 {
		return nil
	}
	m := map[string]string{}
	for _, n := range p.rec.Namespaces {
		m[n] = "/proc/" + strconv.Itoa(p.rec.HolderPID) + "/ns/" + n
	}
	return m
}

func (b *Backend) putPod(p *pod) error {
	p.rec.Version = 1
	if err := b.db.Put(bucketPods, p.rec.ID, p.rec); err != nil {
		return fmt.Errorf("pod %s: %w", p.rec.ID, err)
	}
	return nil
}

func (b *Backend) getPod(id string) (*pod, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pods[id]
	if p == nil {
		return nil, notFound("pod sandbox", id)
	}
	if p.cfg == nil {
		p.cfg = &runtimeapi.PodSandboxConfig{}
		if err := proto.Unmarshal(p.rec.Config, p.cfg); err != nil {
			return nil, fmt.Errorf("pod %s: config record: %w", id, err)
		}
	}
	return p, nil
}

// podCgroup is the pod's cgroup: kubelet's cgroup_parent (with the cgroupfs
// driver an absolute path, e.g. /kubepods/besteffort/pod<uid>), or one of
// our own under the configured base.
func (b *Backend) podCgroup(id string, cfg *runtimeapi.PodSandboxConfig) (string, bool, error) {
	parent := cfg.GetLinux().GetCgroupParent()
	if parent == "" {
		return path.Join(b.cfg.CgroupBase, id), true, nil
	}
	if strings.HasSuffix(parent, ".slice") && !strings.Contains(parent, "/") {
		return "", false, fmt.Errorf("%w: cgroup_parent %q is a systemd slice; Corral uses the cgroupfs driver", runtimes.ErrInvalid, parent)
	}
	clean := path.Clean("/" + parent)
	if clean != "/"+strings.TrimPrefix(parent, "/") || clean == "/" {
		return "", false, fmt.Errorf("%w: cgroup_parent %q is not a clean cgroup path", runtimes.ErrInvalid, parent)
	}
	return strings.TrimPrefix(clean, "/"), false, nil
}

// RunPodSandbox creates the pod's cgroup and, unless it shares every host
// namespace, its namespace holder and CNI network.
func (b *Backend) RunPodSandbox(ctx context.Context, id string, cfg *runtimeapi.PodSandboxConfig, handler string) (_ string, retErr error) {
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
	raw, err := proto.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	p := &pod{cfg: cfg, rec: podRecord{ID: id, Config: raw, Handler: handler, CreatedAt: time.Now().UnixNano(), Cgroup: cg, OwnCgroup: own}}
	if err := b.cg.Create(cg); err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			b.teardown(cctx, p)
			os.RemoveAll(filepath.Dir(b.resolvConf(id)))
			if own {
				b.cg.Remove(cg)
			}
		}
	}()

	nsOpt := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	ns, err := holderNamespaces(nsOpt)
	if err != nil {
		return "", err
	}
	if err := checkSysctls(cfg.GetLinux().GetSysctls(), ns); err != nil {
		return "", err
	}
	if err := b.writeResolvConf(id, cfg.GetDnsConfig()); err != nil {
		return "", err
	}
	p.rec.PIDMode = nsOpt.GetPid()
	if len(ns) > 0 {
		if err := b.startHolder(ctx, p, ns); err != nil {
			return "", fmt.Errorf("pod sandbox %s: %w", id, err)
		}
	}
	if nsOpt.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		p.rec.CNI = true
		att, err := b.net.Add(ctx, b.procExec(), id, p.nsPaths()["net"], cfg)
		if err != nil {
			p.rec.CNI = false // nothing to delete
			return "", fmt.Errorf("pod sandbox %s: %w", id, err)
		}
		p.rec.IPs = att.IPs()
	}
	p.rec.State = runtimeapi.PodSandboxState_SANDBOX_READY
	if err := b.putPod(p); err != nil {
		return "", err
	}
	b.mu.Lock()
	b.pods[id] = p
	b.mu.Unlock()
	return id, nil
}

// holderNamespaces are the namespaces a pod's holder creates and keeps:
// network and UTS unless the pod has the host's network, IPC unless it
// has the host's, PID unless it has the host's (containerd's pause holds
// one for CONTAINER too: containers asking for POD join it), and a mount
// namespace whenever there is a holder, as the base of its containers'
// own. A pod sharing every host namespace needs no holder.
func holderNamespaces(o *runtimeapi.NamespaceOption) ([]string, error) {
	if o.GetPid() == runtimeapi.NamespaceMode_TARGET {
		return nil, invalid("pod PID namespace mode TARGET applies to containers, not pods")
	}
	var ns []string
	if o.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		ns = append(ns, "net", "uts")
	}
	if o.GetIpc() != runtimeapi.NamespaceMode_NODE {
		ns = append(ns, "ipc")
	}
	if o.GetPid() != runtimeapi.NamespaceMode_NODE {
		ns = append(ns, "pid")
	}
	if len(ns) > 0 {
		ns = append(ns, "mnt")
	}
	return ns, nil
}

// startHolder starts the process that keeps the pod's namespaces: the
// trampoline created in them, which names the host (only in the pod's own
// UTS namespace), brings up loopback, and stays as the pod's init (PID 1
// of its PID namespace, reaping orphans) until the pod stops.
func (b *Backend) startHolder(ctx context.Context, p *pod, ns []string) error {
	host := p.cfg.GetHostname()
	if host == "" {
		host = p.cfg.GetMetadata().GetName()
	}
	if len(host) > 64 {
		host = host[:64]
	}
	spec := &proc.Spec{Path: "pod-holder", Init: true, NewNamespaces: ns, Hostname: host,
		CgroupProcs: b.cg.ProcsFiles(p.rec.Cgroup), Setsid: true}
	if !slices.Contains(ns, "uts") {
		spec.Hostname = ""
	}
	if slices.Contains(ns, "ipc") {
		// POSIX shared memory is files in /dev/shm, which an IPC
		// namespace does not cover: the pod gets its own, as with
		// containerd's sandbox (64 MiB).
		spec.Mounts = []proc.Mount{{Type: "tmpfs", Target: "/dev/shm", Data: "mode=1777,size=65536k"}}
	}
	pid, err := b.units.Spawner().Start(ctx, spec)
	if pid <= 0 {
		return fmt.Errorf("namespace holder: %w", err)
	}
	p.holder = b.units.Reaper().Watch(pid)
	p.rec.HolderPID = pid
	p.rec.Namespaces = ns
	if err != nil {
		return fmt.Errorf("namespace holder: %w", err)
	}
	p.rec.HolderStart, _ = proc.StartTime(pid)
	return nil
}

// teardown releases the network and the namespace holder; it is safe to
// repeat.
func (b *Backend) teardown(ctx context.Context, p *pod) {
	if p.rec.CNI {
		nsPath := p.nsPaths()["net"]
		if !b.holderAlive(p) {
			nsPath = ""
		}
		if err := b.net.Del(ctx, b.procExec(), p.rec.ID, nsPath, p.cfg); err != nil {
			b.log.Warn("pod network teardown", "pod", p.rec.ID, "err", err)
		} else {
			p.rec.CNI = false
		}
	}
	if p.rec.HolderPID != 0 {
		if b.holderAlive(p) {
			syscall.Kill(p.rec.HolderPID, syscall.SIGKILL)
			if p.holder != nil {
				select {
				case <-p.holder:
				case <-ctx.Done():
				}
			}
		}
		if p.holder != nil {
			b.units.Reaper().Unwatch(p.rec.HolderPID)
		}
		p.holder = nil
		p.rec.HolderPID = 0
	}
}

func (b *Backend) holderAlive(p *pod) bool {
	if p.rec.HolderPID == 0 {
		return false
	}
	st, err := proc.StartTime(p.rec.HolderPID)
	return err == nil && (p.rec.HolderStart == 0 || st == p.rec.HolderStart)
}

// StopPodSandbox stops every container of the pod and releases its network
// and namespaces. Stopping an unknown or stopped pod is not an error.
func (b *Backend) StopPodSandbox(ctx context.Context, id string) error {
	p, err := b.getPod(id)
	if err != nil {
		return nil
	}
	for _, c := range b.podContainers(id) {
		if err := b.StopContainer(ctx, c, 0); err != nil {
			return fmt.Errorf("pod sandbox %s: %w", id, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.teardown(ctx, p)
	p.rec.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	return b.putPod(p)
}

// RemovePodSandbox removes the pod, its containers and (if it is ours) its
// cgroup. Removing an unknown pod is not an error.
func (b *Backend) RemovePodSandbox(ctx context.Context, id string) error {
	if _, err := b.getPod(id); err != nil {
		return nil
	}
	if err := b.StopPodSandbox(ctx, id); err != nil {
		return err
	}
	for _, c := range b.podContainers(id) {
		if err := b.RemoveContainer(ctx, c); err != nil {
			return fmt.Errorf("pod sandbox %s: %w", id, err)
		}
	}
	p, err := b.getPod(id)
	if err != nil {
		return nil
	}
	if p.rec.OwnCgroup {
		if err := b.cg.Remove(p.rec.Cgroup); err != nil {
			return fmt.Errorf("pod sandbox %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(filepath.Dir(b.resolvConf(id))); err != nil {
		return fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	if err := b.db.Delete(bucketPods, id); err != nil {
		return fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	b.mu.Lock()
	delete(b.pods, id)
	b.mu.Unlock()
	return nil
}

func (b *Backend) podContainers(podID string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for id, c := range b.containers {
		if c.rec.PodID == podID {
			ids = append(ids, id)
		}
	}
	return ids
}

func nsMode(p *pod, n string) runtimeapi.NamespaceMode {
	for _, x := range p.rec.Namespaces {
		if x == n {
			return runtimeapi.NamespaceMode_POD
		}
	}
	return runtimeapi.NamespaceMode_NODE
}

// PodSandboxStatus reports a pod with its IPs and namespace modes.
func (b *Backend) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	p, err := b.getPod(id)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := &runtimeapi.PodSandboxStatus{
		Id:          id,
		Metadata:    p.cfg.GetMetadata(),
		State:       p.rec.State,
		CreatedAt:   p.rec.CreatedAt,
		Labels:      p.cfg.GetLabels(),
		Annotations: p.cfg.GetAnnotations(),
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: nsMode(p, "net"), Ipc: nsMode(p, "ipc"), Pid: p.rec.PIDMode,
		}}},
		RuntimeHandler: p.rec.Handler,
		Network:        &runtimeapi.PodSandboxNetworkStatus{},
	}
	if len(p.rec.IPs) > 0 && p.rec.State == runtimeapi.PodSandboxState_SANDBOX_READY {
		st.Network.Ip = p.rec.IPs[0]
		for _, ip := range p.rec.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if verbose {
		info, _ := json.Marshal(map[string]any{"cgroup": p.rec.Cgroup, "holderPid": p.rec.HolderPID, "namespaces": p.rec.Namespaces, "ips": p.rec.IPs})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListPodSandbox lists pods matching filter.
func (b *Backend) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	b.mu.Lock()
	ids := make([]string, 0, len(b.pods))
	for id := range b.pods {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, id := range ids {
		p, err := b.getPod(id)
		if err != nil {
			continue
		}
		b.mu.Lock()
		s := &runtimeapi.PodSandbox{Id: id, Metadata: p.cfg.GetMetadata(), State: p.rec.State, CreatedAt: p.rec.CreatedAt,
			Labels: p.cfg.GetLabels(), Annotations: p.cfg.GetAnnotations(), RuntimeHandler: p.rec.Handler}
		b.mu.Unlock()
		if f := filter; f != nil {
			if f.Id != "" && f.Id != id {
				continue
			}
			if f.State != nil && f.State.State != s.State {
				continue
			}
			if !matchLabels(f.LabelSelector, s.Labels) {
				continue
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func matchLabels(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
