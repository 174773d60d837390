package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/logs"
	"corral.io/corral/guest"
	"corral.io/corral/guest/wire"
	"corral.io/corral/runtimes"
)

// container is a container of a VM pod; its process lives in the guest.
type container struct {
	id, podID  string
	cfg        *runtimeapi.ContainerConfig
	imageRef   string // image ID
	state      runtimeapi.ContainerState
	createdAt  int64
	startedAt  int64
	finishedAt int64
	exitCode   int32
	reason     string
	message    string
	logPath    string
	log        *logs.CRIFile
	exited     chan struct{} // closed on exit; nil before start
}

// exitLocked records the end of the container's process once.
func (c *container) exitLocked(code int32, reason, msg string) {
	if c.state == runtimeapi.ContainerState_CONTAINER_EXITED {
		return
	}
	c.state = runtimeapi.ContainerState_CONTAINER_EXITED
	c.exitCode, c.reason, c.message = code, reason, msg
	c.finishedAt = time.Now().UnixNano()
	if c.exited != nil {
		close(c.exited)
	}
}

func (c *container) closeLog() {
	if c.log != nil {
		c.log.Close()
		c.log = nil
	}
}

// runningPod returns the pod and its VM if it is ready.
func (b *Backend) runningPod(id string) (*pod, *vm, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pods[id]
	if p == nil {
		return nil, nil, notFound("pod sandbox", id)
	}
	if p.state != runtimeapi.PodSandboxState_SANDBOX_READY || p.vm == nil {
		return nil, nil, fmt.Errorf("%w: pod sandbox %s is not ready", runtimes.ErrPrecondition, id)
	}
	return p, p.vm, nil
}

// CreateContainer prepares the container's root in the guest (an overlay
// of its image): the reserved image is drive img0; an OCI image is
// unpacked into a cached ext4 and written into one of the pod's spare
// drives the first time the pod uses it.
func (b *Backend) CreateContainer(ctx context.Context, id, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	p, v, err := b.runningPod(podID)
	if err != nil {
		return "", err
	}
	if err := checkSecurity(cfg.GetLinux().GetSecurityContext()); err != nil {
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	ref := cfg.GetImage().GetImage()
	device, imageID := "img0", ImageID
	var img ociImage
	if !isImage(ref) {
		oi, err := b.ociImageFor(ctx, ref)
		if err != nil {
			return "", fmt.Errorf("container %s: %w", id, err)
		}
		img, imageID = *oi, oi.ID
		if device, err = b.slotFor(p, oi); err != nil {
			return "", fmt.Errorf("container %s: %w", id, err)
		}
	}
	argv := containerArgv(cfg.GetCommand(), cfg.GetArgs(), img.Entrypoint, img.Cmd)
	if len(argv) == 0 {
		return "", invalid("container %s: no command, and the image %s has none", id, ref)
	}
	b.mu.Lock()
	_, dup := b.containers[id]
	b.mu.Unlock()
	if dup {
		return "", fmt.Errorf("container %s: %w", id, runtimes.ErrExists)
	}
	env := append([]string{}, img.Env...)
	for _, kv := range cfg.GetEnvs() {
		env = append(env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	cwd := cfg.GetWorkingDir()
	if cwd == "" {
		cwd = img.WorkingDir
	}
	c := &container{id: id, podID: podID, cfg: cfg, imageRef: imageID, state: runtimeapi.ContainerState_CONTAINER_CREATED, createdAt: time.Now().UnixNano()}
	if lp := cfg.GetLogPath(); lp != "" && podCfg.GetLogDirectory() != "" {
		c.logPath = filepath.Join(podCfg.GetLogDirectory(), lp)
		if c.log, err = logs.OpenCRIFile(c.logPath); err != nil {
			return "", invalid("container %s: %v", id, err)
		}
	}
	podIP := ""
	if p.net != nil {
		podIP = p.net.att.IPs()[0]
	}
	files, err := etcFiles(p.cfg, podIP)
	if err != nil {
		c.closeLog()
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = v.mux.Call(cctx, "create", guest.CreateArgs{ID: id, Device: device, Argv: argv, Env: env, Cwd: cwd,
		User: containerUser(cfg.GetLinux().GetSecurityContext(), img.User), Groups: supplementalGroups(cfg.GetLinux().GetSecurityContext()),
		Files: files, Hostname: podHostname(p.cfg)}, nil)
	if err != nil {
		c.closeLog()
		return "", fmt.Errorf("container %s: guest: %w", id, err)
	}
	b.mu.Lock()
	b.containers[id] = c
	b.mu.Unlock()
	return id, nil
}

func (b *Backend) getContainer(id string) (*container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.containers[id]
	if c == nil {
		return nil, notFound("container", id)
	}
	return c, nil
}

// StartContainer starts the process in the guest and returns once it runs;
// its output is written to the CRI log as it arrives.
func (b *Backend) StartContainer(ctx context.Context, id string) error {
	c, err := b.getContainer(id)
	if err != nil {
		return err
	}
	b.mu.Lock()
	created := c.state == runtimeapi.ContainerState_CONTAINER_CREATED
	b.mu.Unlock()
	if !created {
		return fmt.Errorf("%w: container %s is not in state created", runtimes.ErrPrecondition, id)
	}
	_, v, err := b.runningPod(c.podID)
	if err != nil {
		return err
	}
	s, err := v.mux.Open("start", guest.IDArgs{ID: id})
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var st guest.Started
	if err := s.WaitReply(cctx, &st); err != nil {
		s.Close()
		b.mu.Lock()
		c.exitLocked(128, "StartError", err.Error())
		b.mu.Unlock()
		return fmt.Errorf("container %s: start: %w", id, err)
	}
	b.mu.Lock()
	c.state = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.startedAt = time.Now().UnixNano()
	c.exited = make(chan struct{})
	b.mu.Unlock()
	go b.follow(c, s)
	return nil
}

// follow writes the container's output to its CRI log until its Exit
// frame, or until the VM is gone.
func (b *Backend) follow(c *container, s *wire.Stream) {
	defer s.Close()
	var out, errb lineSplitter
	for {
		f, err := s.Recv(context.Background())
		if err != nil {
			b.mu.Lock()
			c.exitLocked(255, "VMExited", "lost the guest: "+err.Error())
			b.mu.Unlock()
			return
		}
		switch f.Kind {
		case wire.Stdout:
			out.write(c.log, logs.Stream("stdout"), f.Data)
		case wire.Stderr:
			errb.write(c.log, logs.Stream("stderr"), f.Data)
		case wire.Exit:
			out.flush(c.log, logs.Stream("stdout"))
			errb.flush(c.log, logs.Stream("stderr"))
			var x wire.ExitStatus
			json.Unmarshal(f.Data, &x)
			reason := "Completed"
			if x.Code != 0 {
				reason = "Error"
			}
			b.mu.Lock()
			c.exitLocked(int32(x.Code), reason, x.Error)
			b.mu.Unlock()
			return
		}
	}
}

// lineSplitter cuts a byte stream into the CRI log's lines.
type lineSplitter struct{ buf []byte }

func (l *lineSplitter) write(f *logs.CRIFile, stream logs.Stream, p []byte) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if f != nil {
			f.Line(time.Now(), stream, l.buf[:i], false)
		}
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) >= 16<<10 {
		if f != nil {
			f.Line(time.Now(), stream, l.buf, true)
		}
		l.buf = nil
	}
}

func (l *lineSplitter) flush(f *logs.CRIFile, stream logs.Stream) {
	if len(l.buf) > 0 && f != nil {
		f.Line(time.Now(), stream, l.buf, false)
	}
	l.buf = nil
}

// StopContainer sends SIGTERM, then SIGKILL after timeout; idempotent.
func (b *Backend) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c, err := b.getContainer(id)
	if err != nil {
		return err
	}
	b.mu.Lock()
	running := c.state == runtimeapi.ContainerState_CONTAINER_RUNNING
	exited := c.exited
	b.mu.Unlock()
	if !running {
		return nil
	}
	_, v, err := b.runningPod(c.podID)
	if err != nil {
		return nil // the VM is gone, and the container with it
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := v.mux.Call(cctx, "kill", guest.KillArgs{ID: id, Signal: int(sig)}, nil)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("container %s: kill: %w", id, err)
		}
		wait := timeout
		if sig == syscall.SIGKILL {
			wait = 10 * time.Second
		}
		select {
		case <-exited:
			return nil
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("container %s: still running after SIGKILL", id)
}

// RemoveContainer removes the container's root in the guest; idempotent.
func (b *Backend) RemoveContainer(ctx context.Context, id string) error {
	c, err := b.getContainer(id)
	if err != nil {
		return nil
	}
	if _, v, err := b.runningPod(c.podID); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := v.mux.Call(cctx, "remove", guest.IDArgs{ID: id}, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("container %s: remove: %w", id, err)
		}
	}
	b.mu.Lock()
	c.exitLocked(137, "Killed", "removed")
	c.closeLog()
	delete(b.containers, id)
	b.mu.Unlock()
	return nil
}

// ContainerStatus reports the container.
func (b *Backend) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := b.getContainer(id)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
		Id: c.id, Metadata: c.cfg.GetMetadata(), State: c.state, CreatedAt: c.createdAt,
		StartedAt: c.startedAt, FinishedAt: c.finishedAt, ExitCode: c.exitCode,
		Image: c.cfg.GetImage(), ImageRef: c.imageRef, ImageId: c.imageRef, Reason: c.reason, Message: c.message,
		Labels: c.cfg.GetLabels(), Annotations: c.cfg.GetAnnotations(), LogPath: c.logPath,
		Mounts: nil, User: &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{}},
	}}, nil
}

// ListContainers lists the containers matching filter.
func (b *Backend) ListContainers(ctx context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range b.containers {
		if f.GetId() != "" && f.GetId() != c.id {
			continue
		}
		if f.GetPodSandboxId() != "" && f.GetPodSandboxId() != c.podID {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != c.state {
			continue
		}
		if !matchLabels(c.cfg.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id: c.id, PodSandboxId: c.podID, Metadata: c.cfg.GetMetadata(), Image: c.cfg.GetImage(),
			ImageRef: c.imageRef, ImageId: c.imageRef, State: c.state, CreatedAt: c.createdAt,
			Labels: c.cfg.GetLabels(), Annotations: c.cfg.GetAnnotations(),
		})
	}
	return out, nil
}

// containerArgv is Kubernetes' rule: command replaces the image's
// entrypoint (and then its cmd too), args replace its cmd.
func containerArgv(command, args, entrypoint, cmd []string) []string {
	if len(command) > 0 {
		return append(append([]string{}, command...), args...)
	}
	if len(args) > 0 {
		return append(append([]string{}, entrypoint...), args...)
	}
	return append(append([]string{}, entrypoint...), cmd...)
}

// slotFor returns the guest drive holding img in pod p, writing it into
// the next spare drive the first time.
func (b *Backend) slotFor(p *pod, img *ociImage) (string, error) {
	p.slotMu.Lock()
	defer p.slotMu.Unlock()
	if i, ok := p.slotOf[img.ID]; ok {
		return fmt.Sprintf("img%d", i), nil
	}
	n := len(p.slotOf)
	if n >= len(p.slots) {
		return "", fmt.Errorf("%w: pod %s already uses %d images, as many as its VM has spare drives (microvm has no hotplug)",
			runtimes.ErrPrecondition, p.id, len(p.slots))
	}
	if err := fillSlot(p.slots[n], img.File); err != nil {
		return "", err
	}
	p.slotOf[img.ID] = n + 1
	return fmt.Sprintf("img%d", n+1), nil
}

// containerUser is the OCI user a container runs as: the security
// context's run_as_user or run_as_username over the image's User, with
// run_as_group replacing the group.
func containerUser(sc *runtimeapi.LinuxContainerSecurityContext, image string) string {
	user := image
	if u := sc.GetRunAsUser(); u != nil {
		user = strconv.FormatInt(u.GetValue(), 10)
	} else if n := sc.GetRunAsUsername(); n != "" {
		user = n
	}
	if g := sc.GetRunAsGroup(); g != nil {
		name, _, _ := strings.Cut(user, ":")
		if name == "" {
			name = "0"
		}
		user = name + ":" + strconv.FormatInt(g.GetValue(), 10)
	}
	return user
}

// checkSecurity refuses what runc-based runtimes refuse: a group without
// a user to go with it (Kubernetes validates the same).
func checkSecurity(sc *runtimeapi.LinuxContainerSecurityContext) error {
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return invalid("run_as_group is set without run_as_user or run_as_username")
	}
	return nil
}

// supplementalGroups are the security context's extra groups, added in
// the guest to those the image's /etc/group gives the user.
func supplementalGroups(sc *runtimeapi.LinuxContainerSecurityContext) []uint32 {
	var out []uint32
	for _, g := range sc.GetSupplementalGroups() {
		if g >= 0 && g <= 1<<32-1 {
			out = append(out, uint32(g))
		}
	}
	return out
}
