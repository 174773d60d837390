package native

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/manager"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/service"
	"corral.io/corral/agent/unit"
	"corral.io/corral/runtimes"
)

// ctrRecord is what the state DB keeps of a container.
type ctrRecord struct {
	Version    int
	ID         string
	PodID      string
	Unit       string // the transient service unit
	Cgroup     string // relative to the cgroup root
	LogPath    string // absolute; "" when kubelet gave no log directory
	Config     []byte // runtimeapi.ContainerConfig, protobuf
	State      runtimeapi.ContainerState
	CreatedAt  int64
	StartedAt  int64
	FinishedAt int64
	ExitCode   int32
	Reason     string
	Message    string
	Mounts     []proc.Mount             // made in the container's own mount namespace
	Warnings   []string                 // mounts skipped, shown in the status message
	PIDMode    runtimeapi.NamespaceMode // effective: NODE, POD (the holder's) or CONTAINER
	Caps       *proc.Caps
	ReadOnly   bool        // readonly_rootfs: / is read-only in the container's mount namespace
	Seccomp    proc.Filter // compiled at create, for the main process and every exec
}

// container is a container in memory.
type container struct {
	rec    ctrRecord
	cfg    *runtimeapi.ContainerConfig
	log    *logs.CRIFile
	stdinR *os.File // the main process's stdin (read end) until it is spawned
	stdinW *os.File // kept for attach
	oom    bool     // the kernel reported an OOM in the container's memory cgroup
	tee    *tee     // the main process's output, for attach; nil after an agent restart
}

// oomKilled records an OOM kill in the container's cgroup. The kernel's
// notification can arrive after the container's exit was handled (the
// eventfd is read by its own goroutine): then the exit's reason is fixed
// up here.
func (b *Backend) oomKilled(c *container) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c.oom = true
	if c.rec.State == runtimeapi.ContainerState_CONTAINER_EXITED && c.rec.ExitCode != 0 && c.rec.Reason != "OOMKilled" {
		c.rec.Reason = "OOMKilled"
		if err := b.putContainer(c); err != nil {
			b.log.Warn("record OOM kill", "container", c.rec.ID, "err", err)
		}
	}
}

func (b *Backend) putContainer(c *container) error {
	c.rec.Version = 1
	if err := b.db.Put(bucketContainers, c.rec.ID, c.rec); err != nil {
		return fmt.Errorf("container %s: %w", c.rec.ID, err)
	}
	return nil
}

func (b *Backend) getContainer(id string) (*container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.containerLocked(id)
}

func (b *Backend) containerLocked(id string) (*container, error) {
	c := b.containers[id]
	if c == nil {
		return nil, notFound("container", id)
	}
	if c.cfg == nil {
		c.cfg = &runtimeapi.ContainerConfig{}
		if err := proto.Unmarshal(c.rec.Config, c.cfg); err != nil {
			return nil, fmt.Errorf("container %s: config record: %w", id, err)
		}
	}
	return c, nil
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// unitName makes a readable, valid, unique unit name for a container:
// cri-<pod>-<container>-<id12>.service.
func unitName(id string, pod, ctr string) string {
	short := func(s string) string {
		s = unsafeChars.ReplaceAllString(s, "_")
		if len(s) > 40 {
			s = s[:40]
		}
		return s
	}
	idp := id
	if len(idp) > 12 {
		idp = idp[:12]
	}
	return "cri-" + short(pod) + "-" + short(ctr) + "-" + short(idp) + ".service"
}

// logPath joins kubelet's log directory and the container's log path,
// refusing a path that leaves the directory.
func logPath(dir, rel string) (string, error) {
	if dir == "" || rel == "" {
		return "", nil
	}
	if filepath.IsAbs(rel) {
		return "", invalid("log_path %q must be relative to the pod's log directory", rel)
	}
	p := filepath.Join(dir, rel)
	if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
		return "", invalid("log_path %q leaves the pod's log directory %s", rel, dir)
	}
	return p, nil
}

// resources maps CRI resources onto the unit model's.
func resources(r *runtimeapi.LinuxContainerResources) unit.Resources {
	var out unit.Resources
	if r == nil {
		return out
	}
	if r.CpuPeriod > 0 {
		out.CPUQuotaPeriod = time.Duration(r.CpuPeriod) * time.Microsecond
	}
	if r.CpuQuota > 0 {
		period := out.CPUQuotaPeriod
		if period == 0 {
			period = 100 * time.Millisecond
		}
		out.CPUQuotaPerSec = time.Duration(float64(time.Duration(r.CpuQuota)*time.Microsecond) / period.Seconds())
	}
	if r.CpuShares > 0 {
		out.CPUShares = uint64(r.CpuShares)
	}
	if r.MemoryLimitInBytes > 0 {
		out.MemoryMax = uint64(r.MemoryLimitInBytes)
	}
	out.AllowedCPUs = r.CpusetCpus
	out.AllowedMemoryNodes = r.CpusetMems
	return out
}

// CreateContainer registers the container as an inactive transient service
// in the pod's cgroup; nothing runs until StartContainer.
func (b *Backend) CreateContainer(ctx context.Context, id, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	p, err := b.getPod(podID)
	if err != nil {
		return "", err
	}
	if p.rec.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", fmt.Errorf("%w: pod sandbox %s is not ready", runtimes.ErrPrecondition, podID)
	}
	if err := checkImage(cfg.GetImage().GetImage()); err != nil {
		return "", err
	}
	argv := append(append([]string{}, cfg.GetCommand()...), cfg.GetArgs()...)
	if len(argv) == 0 || argv[0] == "" {
		return "", invalid("container %q: a command is required (the host image has no entrypoint)", cfg.GetMetadata().GetName())
	}
	if podCfg == nil {
		podCfg = p.cfg
	}
	lp, err := logPath(podCfg.GetLogDirectory(), cfg.GetLogPath())
	if err != nil {
		return "", err
	}
	mounts, warnings, err := planMounts(cfg.GetMounts())
	if err != nil {
		return "", err
	}
	sc := cfg.GetLinux().GetSecurityContext()
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return "", invalid("container %q: run_as_group needs run_as_user or run_as_username", cfg.GetMetadata().GetName())
	}
	// The pod's resolv.conf first, so that a CRI mount of the same path
	// (kubelet's own) wins; masks last, over everything.
	mounts = append(b.dnsMount(podID, mounts), mounts...)
	mounts = append(mounts, pathMasks(sc.GetMaskedPaths(), sc.GetReadonlyPaths())...)
	pidMode, err := containerPIDMode(p, cfg)
	if err != nil {
		return "", err
	}
	caps, err := capabilities(cfg.GetLinux().GetSecurityContext())
	if err != nil {
		return "", err
	}
	filter, err := seccompFilter(sc, caps)
	if err != nil {
		return "", fmt.Errorf("container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	b.mu.Lock()
	_, dup := b.containers[id]
	b.mu.Unlock()
	if dup {
		return "", fmt.Errorf("container %s: %w", id, runtimes.ErrExists)
	}
	raw, err := proto.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	name := unitName(id, podCfg.GetMetadata().GetName(), cfg.GetMetadata().GetName())
	c := &container{cfg: cfg, rec: ctrRecord{
		ID: id, PodID: podID, Unit: name, Cgroup: p.rec.Cgroup + "/" + id, LogPath: lp, Config: raw,
		State: runtimeapi.ContainerState_CONTAINER_CREATED, CreatedAt: time.Now().UnixNano(),
		Mounts: mounts, Warnings: warnings, PIDMode: pidMode, Caps: caps, ReadOnly: sc.GetReadonlyRootfs(),
		Seccomp: filter,
	}}
	u, err := b.buildUnit(name, p, cfg, argv)
	if err != nil {
		return "", err
	}
	opts := manager.TransientOptions{
		Cgroups: b.cg, Cgroup: c.rec.Cgroup,
		Adjust:   b.adjust(c, p),
		OnChange: func(_, st service.Status) { b.unitChanged(id, st) },
	}
	if lp != "" {
		if c.log, err = logs.OpenCRIFile(lp); err != nil {
			return "", invalid("container %s: %v", id, err)
		}
		opts.LogMirror = c.log
	}
	if err := b.units.AddTransient(u, opts); err != nil {
		if c.log != nil {
			c.log.Close()
		}
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	b.mu.Lock()
	b.containers[id] = c
	err = b.putContainer(c)
	b.mu.Unlock()
	if err != nil {
		return "", err
	}
	for _, w := range warnings {
		b.log.Warn("container mount skipped", "container", id, "unit", name, "reason", w)
		if err := b.units.LogStore().Append(name, logs.Core, w); err != nil {
			b.log.Warn("log append", "unit", name, "err", err)
		}
	}
	b.emit(c, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return id, nil
}

// buildUnit is the transient service of a container: Type=exec, so that a
// command that cannot be executed fails the start.
func (b *Backend) buildUnit(name string, p *pod, cfg *runtimeapi.ContainerConfig, argv []string) (*unit.Unit, error) {
	md := p.cfg.GetMetadata()
	desc := unsafeChars.ReplaceAllString(md.GetNamespace()+"/"+md.GetName()+"/"+cfg.GetMetadata().GetName(), "_")
	u := b.units.ParseTransient(name, "[Unit]\nDescription=CRI container "+desc+"\nDefaultDependencies=no\n[Service]\nType=exec\nExecStart=/bin/true\nKillMode=control-group\n")
	if u.LoadState != unit.LoadLoaded {
		return nil, fmt.Errorf("container unit %s: %s", name, u.LoadError)
	}
	s := u.Service
	s.ExecStart = []unit.Command{{Path: argv[0], Args: argv, Flags: unit.NoEnvExpand}}
	for _, kv := range cfg.GetEnvs() {
		s.Environment = append(s.Environment, kv.GetKey()+"="+string(kv.GetValue()))
	}
	s.WorkingDirectory = cfg.GetWorkingDir()
	sc := cfg.GetLinux().GetSecurityContext()
	if u := sc.GetRunAsUser(); u != nil {
		s.User = strconv.FormatInt(u.GetValue(), 10)
	} else if n := sc.GetRunAsUsername(); n != "" {
		s.User = n
	}
	if g := sc.GetRunAsGroup(); g != nil {
		s.Group = strconv.FormatInt(g.GetValue(), 10)
	}
	for _, g := range sc.GetSupplementalGroups() {
		s.SupplementaryGroups = append(s.SupplementaryGroups, strconv.FormatInt(g, 10))
	}
	s.NoNewPrivileges = sc.GetNoNewPrivs()
	if r := cfg.GetLinux().GetResources(); r != nil {
		if r.OomScoreAdj != 0 {
			adj := int(r.OomScoreAdj)
			s.OOMScoreAdjust = &adj // clamped by the spawner (DESIGN §8)
		}
		s.Resources = resources(r)
	}
	return u, nil
}

// adjust puts the container's process into its namespaces and hands the
// main process its stdin: the pod's network, UTS and IPC namespaces; a
// mount namespace of its own, copied from the pod's (or the host's), with
// the container's bind mounts; the pod's PID namespace or one of its own
// (with a matching /proc); and its capabilities.
func (b *Backend) adjust(c *container, p *pod) func(sp *proc.Spec, kind string, main bool) {
	return func(sp *proc.Spec, kind string, main bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		sp.Namespaces = p.nsPaths()
		if c.rec.PIDMode != runtimeapi.NamespaceMode_POD {
			delete(sp.Namespaces, "pid")
		}
		if c.rec.PIDMode == runtimeapi.NamespaceMode_CONTAINER {
			sp.NewNamespaces = []string{"pid"}
		}
		sp.PrivateMounts = true
		sp.Mounts = c.rec.Mounts
		sp.MountProc = c.rec.PIDMode != runtimeapi.NamespaceMode_NODE
		sp.ReadOnlyRoot = c.rec.ReadOnly
		sp.Caps = c.rec.Caps
		sp.Seccomp = c.rec.Seccomp
		if main && c.stdinR != nil {
			sp.Stdin = c.stdinR
		}
		if main && c.tee != nil && sp.TTY == nil {
			sp.Stdout, sp.Stderr = c.tee.hook(sp.Stdout, sp.Stderr)
		}
		if main {
			sp.Sysctls = p.cfg.GetLinux().GetSysctls()
		}
	}
}

// containerPIDMode is the PID namespace a container gets: the host's
// (NODE), the pod's (POD: the holder's, or the host's if the pod has the
// host's), or one of its own (CONTAINER, kubelet's default).
func containerPIDMode(p *pod, cfg *runtimeapi.ContainerConfig) (runtimeapi.NamespaceMode, error) {
	switch m := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid(); m {
	case runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_CONTAINER:
		return m, nil
	case runtimeapi.NamespaceMode_POD:
		if slices.Contains(p.rec.Namespaces, "pid") {
			return m, nil
		}
		return runtimeapi.NamespaceMode_NODE, nil
	default:
		return 0, invalid("container %q: PID namespace mode %s (sharing another container's) is not supported by the native runtime; use POD", cfg.GetMetadata().GetName(), m)
	}
}

// planMounts turns CRI mounts into bind mounts for the container's own
// mount namespace. The container sees the host's files, so a container
// path must exist on the host; one that does not is created only inside
// an earlier (writable) mount of the same container, which is the pod's
// own volume, never on the host itself: there the mount is skipped with a
// warning (kubelet's /dev/termination-log is the usual case).
func planMounts(ms []*runtimeapi.Mount) ([]proc.Mount, []string, error) {
	var out []proc.Mount
	var warnings []string
	for _, m := range ms {
		hp, cp := m.GetHostPath(), m.GetContainerPath()
		what := fmt.Sprintf("mount %s → %s", hp, cp)
		for _, x := range []string{hp, cp} {
			if !filepath.IsAbs(x) || filepath.Clean(x) != strings.TrimSuffix(x, "/") && x != "/" {
				return nil, nil, invalid("%s: paths must be absolute and clean (no . or ..)", what)
			}
		}
		cp = filepath.Clean(cp)
		if cp == "/" {
			return nil, nil, invalid("%s: the container's root is the host's and cannot be replaced", what)
		}
		src, err := os.Stat(hp)
		if err != nil {
			return nil, nil, invalid("%s: host path: %v", what, err)
		}
		pm := proc.Mount{Source: hp, Target: cp, ReadOnly: m.GetReadonly()}
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
			pm.Propagation = "private"
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			pm.Propagation = "rslave"
		default:
			return nil, nil, invalid("%s: propagation %s: mounts made in a native container cannot reach the host (its mount namespace is a slave of the host's)", what, m.GetPropagation())
		}
		// Where the container path resolves: inside the latest earlier
		// mount that covers it, or on the host.
		view, under := cp, -1
		for i := len(out) - 1; i >= 0; i-- {
			if rel, err := filepath.Rel(out[i].Target, cp); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
				view, under = filepath.Join(out[i].Source, rel), i
				break
			}
		}
		dst, err := os.Stat(view)
		switch {
		case err == nil:
			if dst.IsDir() != src.IsDir() {
				return nil, nil, invalid("%s: cannot mount a %s on a %s", what, kind(src), kind(dst))
			}
		case errors.Is(err, fs.ErrNotExist) && under >= 0 && !out[under].ReadOnly:
			pm.Create = kind(src)
		case errors.Is(err, fs.ErrNotExist):
			warnings = append(warnings, fmt.Sprintf("%s skipped: %s does not exist on the host, and a native container sees the host's files, so creating it would change the host", what, cp))
			continue
		default:
			return nil, nil, invalid("%s: container path: %v", what, err)
		}
		out = append(out, pm)
	}
	return out, warnings, nil
}

// pathMasks hides kubelet's masked paths (a read-only empty tmpfs on a
// directory, /dev/null on a file) and makes its read-only paths read-only,
// as runc does; only the container's view changes, and paths this kernel
// lacks are skipped.
func pathMasks(masked, readonly []string) []proc.Mount {
	var out []proc.Mount
	for _, p := range masked {
		fi, err := os.Stat(p)
		switch {
		case err != nil || !filepath.IsAbs(p):
			continue
		case fi.IsDir():
			out = append(out, proc.Mount{Type: "tmpfs", Target: p, ReadOnly: true, Optional: true})
		default:
			out = append(out, proc.Mount{Source: os.DevNull, Target: p, ReadOnly: true, Optional: true})
		}
	}
	for _, p := range readonly {
		if filepath.IsAbs(p) {
			out = append(out, proc.Mount{Source: p, Target: p, ReadOnly: true, Optional: true})
		}
	}
	return out
}

func kind(fi fs.FileInfo) string {
	if fi.IsDir() {
		return "dir"
	}
	return "file"
}

// StartContainer starts the container's unit and returns once its command
// was executed.
func (b *Backend) StartContainer(ctx context.Context, id string) error {
	b.mu.Lock()
	c, err := b.containerLocked(id)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	if c.rec.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		b.mu.Unlock()
		return fmt.Errorf("%w: container %s is %s, not created", runtimes.ErrPrecondition, id, c.rec.State)
	}
	p := b.pods[c.rec.PodID]
	if p == nil || p.rec.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		b.mu.Unlock()
		return fmt.Errorf("%w: pod sandbox %s of container %s is not ready", runtimes.ErrPrecondition, c.rec.PodID, id)
	}
	if c.cfg.GetStdin() {
		if c.stdinR, c.stdinW, err = os.Pipe(); err != nil {
			b.mu.Unlock()
			return fmt.Errorf("container %s: stdin: %w", id, err)
		}
	}
	c.oom = false
	if c.tee, err = newTee(); err != nil {
		b.mu.Unlock()
		return fmt.Errorf("container %s: output: %w", id, err)
	}
	b.mu.Unlock()
	// The cgroup is created (the service's own Create is idempotent) and
	// watched before the command runs: an allocation at once can be
	// killed before the start returns.
	if err := b.cg.Create(c.rec.Cgroup); err != nil {
		b.mu.Lock()
		c.tee.spawned()
		for _, f := range []*os.File{c.stdinR, c.stdinW} {
			if f != nil {
				f.Close()
			}
		}
		c.stdinR, c.stdinW = nil, nil
		b.mu.Unlock()
		return fmt.Errorf("container %s: %w", id, err)
	}
	if d := b.cg.Path("memory", c.rec.Cgroup); d != "" {
		if err := watchOOM(d, func() { b.oomKilled(c) }); err != nil {
			b.log.Warn("container OOM kills will not be reported", "container", id, "err", err)
		}
	}

	err = b.units.StartUnit(ctx, c.rec.Unit)
	b.mu.Lock()
	c.tee.spawned()
	if c.stdinR != nil {
		c.stdinR.Close()
		c.stdinR = nil
	}
	if err != nil && c.rec.State == runtimeapi.ContainerState_CONTAINER_CREATED {
		// The unit never got going (no state change reached us).
		c.rec.State = runtimeapi.ContainerState_CONTAINER_EXITED
		c.rec.FinishedAt, c.rec.ExitCode, c.rec.Reason, c.rec.Message = time.Now().UnixNano(), 128, "StartError", err.Error()
		b.putContainer(c)
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	return nil
}

// unitChanged follows the container's unit: running once its command was
// executed, exited with the main process's status when it is gone.
func (b *Backend) unitChanged(id string, st service.Status) {
	b.mu.Lock()
	c := b.containers[id]
	if c == nil {
		b.mu.Unlock()
		return
	}
	var ev runtimeapi.ContainerEventType
	switch st.ActiveState {
	case "active", "reloading":
		if c.rec.State == runtimeapi.ContainerState_CONTAINER_CREATED {
			c.rec.State = runtimeapi.ContainerState_CONTAINER_RUNNING
			c.rec.StartedAt = time.Now().UnixNano()
			ev = runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
		}
	case "inactive", "failed":
		if c.rec.State == runtimeapi.ContainerState_CONTAINER_EXITED || (c.rec.State == runtimeapi.ContainerState_CONTAINER_CREATED && st.ExecMainCode == 0) {
			break
		}
		if c.rec.StartedAt == 0 {
			c.rec.StartedAt = time.Now().UnixNano()
		}
		c.rec.State = runtimeapi.ContainerState_CONTAINER_EXITED
		c.rec.FinishedAt = time.Now().UnixNano()
		switch st.ExecMainCode {
		case 1: // CLD_EXITED
			c.rec.ExitCode = int32(st.ExecMainStatus)
		case 2, 3: // killed, dumped
			c.rec.ExitCode = 128 + int32(st.ExecMainStatus)
		}
		c.rec.Reason = "Completed"
		if c.rec.ExitCode != 0 {
			c.rec.Reason = "Error"
		}
		if c.oom && c.rec.ExitCode != 0 {
			c.rec.Reason = "OOMKilled"
		}
		if st.ExecMainCode == 1 && st.ExecMainStatus >= 200 && st.ExecMainStatus <= 245 {
			c.rec.Message = "the command could not be started (status=" + strconv.Itoa(st.ExecMainStatus) + "/" + proc.ExitCodeName(st.ExecMainStatus) + ", see `corralctl status " + c.rec.Unit + "`)"
		}
		if c.stdinW != nil {
			c.stdinW.Close()
			c.stdinW = nil
		}
		ev = runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
	default:
		b.mu.Unlock()
		return
	}
	if err := b.putContainer(c); err != nil {
		b.log.Error("persist container state", "container", id, "err", err)
	}
	b.mu.Unlock()
	if ev != 0 || st.ActiveState == "active" {
		b.emit(c, ev)
	}
}

// StopContainer stops the container's unit: SIGTERM, then SIGKILL after
// timeout. Stopping an unknown or stopped container is not an error.
func (b *Backend) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c, err := b.getContainer(id)
	if err != nil {
		return nil
	}
	if err := b.units.StopUnit(ctx, c.rec.Unit, max(timeout, time.Millisecond)); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	return nil
}

// RemoveContainer stops and forgets the container and its unit. Removing
// an unknown container is not an error.
func (b *Backend) RemoveContainer(ctx context.Context, id string) error {
	c, err := b.getContainer(id)
	if err != nil {
		return nil
	}
	if err := b.StopContainer(ctx, id, 0); err != nil {
		return err
	}
	if err := b.units.RemoveTransient(c.rec.Unit); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if err := b.db.Delete(bucketContainers, id); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	b.mu.Lock()
	delete(b.containers, id)
	if c.log != nil {
		c.log.Close()
	}
	if c.stdinW != nil {
		c.stdinW.Close()
		c.stdinW = nil
	}
	b.mu.Unlock()
	b.emit(c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}

func (b *Backend) statusLocked(c *container) *runtimeapi.ContainerStatus {
	return &runtimeapi.ContainerStatus{
		Id:          c.rec.ID,
		Metadata:    c.cfg.GetMetadata(),
		State:       c.rec.State,
		CreatedAt:   c.rec.CreatedAt,
		StartedAt:   c.rec.StartedAt,
		FinishedAt:  c.rec.FinishedAt,
		ExitCode:    c.rec.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: HostImage, UserSpecifiedImage: c.cfg.GetImage().GetUserSpecifiedImage()},
		ImageRef:    HostImageID,
		ImageId:     HostImageID,
		Reason:      c.rec.Reason,
		Message:     message(c.rec),
		Labels:      c.cfg.GetLabels(),
		Annotations: c.cfg.GetAnnotations(),
		Mounts:      c.cfg.GetMounts(),
		LogPath:     c.rec.LogPath,
		Resources:   &runtimeapi.ContainerResources{Linux: c.cfg.GetLinux().GetResources()},
	}
}

// ContainerStatus reports a container.
func (b *Backend) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	b.mu.Lock()
	c, err := b.containerLocked(id)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: b.statusLocked(c)}
	b.mu.Unlock()
	if verbose {
		// Outside b.mu: the unit's lock is taken before b.mu when it
		// spawns (adjust), never after.
		st, _ := b.units.UnitState(c.rec.Unit)
		info, _ := json.Marshal(map[string]any{"unit": c.rec.Unit, "cgroup": c.rec.Cgroup, "pid": st.MainPID})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListContainers lists containers matching filter.
func (b *Backend) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*runtimeapi.Container
	for id := range b.containers {
		c, err := b.containerLocked(id)
		if err != nil {
			continue
		}
		if f := filter; f != nil {
			if (f.Id != "" && f.Id != id) || (f.PodSandboxId != "" && f.PodSandboxId != c.rec.PodID) ||
				(f.State != nil && f.State.State != c.rec.State) || !matchLabels(f.LabelSelector, c.cfg.GetLabels()) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{
			Id: id, PodSandboxId: c.rec.PodID, Metadata: c.cfg.GetMetadata(),
			Image: &runtimeapi.ImageSpec{Image: HostImage}, ImageRef: HostImageID, ImageId: HostImageID,
			State: c.rec.State, CreatedAt: c.rec.CreatedAt, Labels: c.cfg.GetLabels(), Annotations: c.cfg.GetAnnotations(),
		})
	}
	return out, nil
}

// UpdateContainerResources applies new CPU and memory limits to the
// container's cgroup.
func (b *Backend) UpdateContainerResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, err := b.containerLocked(id)
	if err != nil {
		return err
	}
	if c.rec.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		if err := b.cg.Apply(c.rec.Cgroup, resources(r)); err != nil {
			return fmt.Errorf("container %s: %w", id, err)
		}
	}
	if c.cfg.Linux == nil {
		c.cfg.Linux = &runtimeapi.LinuxContainerConfig{}
	}
	c.cfg.Linux.Resources = r
	if raw, err := proto.Marshal(c.cfg); err == nil {
		c.rec.Config = raw
	}
	return b.putContainer(c)
}

// ReopenContainerLog reopens the log file after kubelet rotated it.
func (b *Backend) ReopenContainerLog(ctx context.Context, id string) error {
	c, err := b.getContainer(id)
	if err != nil {
		return err
	}
	if c.rec.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("%w: container %s is not running", runtimes.ErrPrecondition, id)
	}
	if c.log == nil {
		return fmt.Errorf("%w: container %s has no log file", runtimes.ErrPrecondition, id)
	}
	return c.log.Reopen()
}

// message is the status message: why the container ended, else the
// mounts that were skipped.
func message(r ctrRecord) string {
	if r.Message != "" || len(r.Warnings) == 0 {
		return r.Message
	}
	return strings.Join(r.Warnings, "; ")
}
