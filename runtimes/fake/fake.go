// Package fake is an in-memory runtimes.Backend for tests of the CRI server.
// It keeps pods and containers in maps, uses backend IDs that differ from the
// IDs it is given (so that ID translation is visible), implements every
// optional ability except Streamer, Stats, Updater and LogReopener, and can
// be switched down or made to fail a method.
package fake

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"corral.io/corral/runtimes"
)

var (
	_ runtimes.Backend          = (*Backend)(nil)
	_ runtimes.Execer           = (*Backend)(nil)
	_ runtimes.StreamingRuntime = (*Backend)(nil)
	_ runtimes.Images           = (*Backend)(nil)
	_ runtimes.Events           = (*Backend)(nil)
	_ runtimes.NetworkReadier   = (*Backend)(nil)
	_ streaming.Runtime         = (*streamer)(nil)
)

// Backend is the fake. The zero value is not usable; call New.
type Backend struct {
	name string

	mu       sync.Mutex
	down     string // reason; "" = ready
	fail     map[string]error
	calls    []string
	pods     map[string]*runtimeapi.PodSandboxStatus
	podCfg   map[string]*runtimeapi.PodSandboxConfig
	ctrs     map[string]*runtimeapi.ContainerStatus
	ctrPod   map[string]string
	ctrLabel map[string]map[string]string
	subs     []chan<- *runtimeapi.ContainerEventResponse
}

// New returns a ready fake whose Name is name.
func New(name string) *Backend {
	return &Backend{
		name:     name,
		fail:     map[string]error{},
		pods:     map[string]*runtimeapi.PodSandboxStatus{},
		podCfg:   map[string]*runtimeapi.PodSandboxConfig{},
		ctrs:     map[string]*runtimeapi.ContainerStatus{},
		ctrPod:   map[string]string{},
		ctrLabel: map[string]map[string]string{},
	}
}

// Basic hides every optional ability of b, for tests of Unimplemented.
func Basic(b *Backend) runtimes.Backend { return struct{ runtimes.Backend }{b} }

// BackendID is the ID the fake uses for the object created with id.
func (b *Backend) BackendID(id string) string { return b.name + "-" + id[:min(16, len(id))] }

// Image is the one image the fake has.
func (b *Backend) Image() string { return "localhost/fake/" + b.name + ":latest" }

// SetDown makes every call fail with runtimes.ErrUnavailable (reason ""
// brings it back).
func (b *Backend) SetDown(reason string) { b.mu.Lock(); b.down = reason; b.mu.Unlock() }

// Fail makes every later call of method return err (nil clears).
func (b *Backend) Fail(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.fail, method)
	} else {
		b.fail[method] = err
	}
}

// Calls returns "Method arg" for every call so far.
func (b *Backend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

// enter records a call and returns the error the call must fail with. The
// caller holds no lock; enter leaves b.mu locked on success.
func (b *Backend) enter(method, arg string) error {
	b.mu.Lock()
	b.calls = append(b.calls, method+" "+arg)
	if b.down != "" {
		b.mu.Unlock()
		return fmt.Errorf("fake %s: %s: %w", b.name, b.down, runtimes.ErrUnavailable)
	}
	if err := b.fail[method]; err != nil {
		b.mu.Unlock()
		return err
	}
	return nil
}

func (b *Backend) notFound(kind, id string) error {
	return fmt.Errorf("fake %s: %s %s: %w", b.name, kind, id, runtimes.ErrNotFound)
}

// Name implements runtimes.Backend.
func (b *Backend) Name() string { return "fake" }

// Ready implements runtimes.Backend.
func (b *Backend) Ready(ctx context.Context) (bool, string, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down != "" {
		return false, "FakeDown", b.down
	}
	return true, "", ""
}

// NetworkReady implements runtimes.NetworkReadier.
func (b *Backend) NetworkReady(ctx context.Context) (bool, string, string) { return b.Ready(ctx) }

// RunPodSandbox implements runtimes.Backend.
func (b *Backend) RunPodSandbox(ctx context.Context, id string, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	if err := b.enter("RunPodSandbox", id); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	bid := b.BackendID(id)
	b.pods[bid] = &runtimeapi.PodSandboxStatus{
		Id: bid, Metadata: cfg.GetMetadata(), State: runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt: time.Now().UnixNano(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		RuntimeHandler: handler, Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.0.0.1"},
	}
	b.podCfg[bid] = cfg
	return bid, nil
}

// StopPodSandbox implements runtimes.Backend.
func (b *Backend) StopPodSandbox(ctx context.Context, id string) error {
	if err := b.enter("StopPodSandbox", id); err != nil {
		return err
	}
	defer b.mu.Unlock()
	p, ok := b.pods[id]
	if !ok {
		return b.notFound("pod", id)
	}
	p.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	for cid, pid := range b.ctrPod {
		if pid == id {
			b.stopLocked(cid)
		}
	}
	return nil
}

// RemovePodSandbox implements runtimes.Backend.
func (b *Backend) RemovePodSandbox(ctx context.Context, id string) error {
	if err := b.enter("RemovePodSandbox", id); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if _, ok := b.pods[id]; !ok {
		return b.notFound("pod", id)
	}
	for cid, pid := range b.ctrPod {
		if pid == id {
			b.deleteCtrLocked(cid)
		}
	}
	delete(b.pods, id)
	delete(b.podCfg, id)
	return nil
}

// PodSandboxStatus implements runtimes.Backend.
func (b *Backend) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	if err := b.enter("PodSandboxStatus", id); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	p, ok := b.pods[id]
	if !ok {
		return nil, b.notFound("pod", id)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: clonePod(p)}
	for cid, pid := range b.ctrPod {
		if pid == id {
			resp.ContainersStatuses = append(resp.ContainersStatuses, cloneCtr(b.ctrs[cid]))
		}
	}
	return resp, nil
}

// ListPodSandbox implements runtimes.Backend.
func (b *Backend) ListPodSandbox(ctx context.Context, f *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	if err := b.enter("ListPodSandbox", f.GetId()); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, id := range sortedKeys(b.pods) {
		p := b.pods[id]
		if f.GetId() != "" && f.GetId() != id || f.GetState() != nil && f.GetState().State != p.State ||
			!matches(f.GetLabelSelector(), p.Labels) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: p.Id, Metadata: p.Metadata, State: p.State, CreatedAt: p.CreatedAt,
			Labels: p.Labels, Annotations: p.Annotations, RuntimeHandler: p.RuntimeHandler,
		})
	}
	return out, nil
}

// CreateContainer implements runtimes.Backend.
func (b *Backend) CreateContainer(ctx context.Context, id, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	if err := b.enter("CreateContainer", id+" "+podID); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	if _, ok := b.pods[podID]; !ok {
		return "", b.notFound("pod", podID)
	}
	if img := cfg.GetImage().GetImage(); img != b.Image() {
		return "", fmt.Errorf("fake %s: image %q: only %s exists: %w", b.name, img, b.Image(), runtimes.ErrInvalid)
	}
	bid := b.BackendID(id)
	b.ctrs[bid] = &runtimeapi.ContainerStatus{
		Id: bid, Metadata: cfg.GetMetadata(), State: runtimeapi.ContainerState_CONTAINER_CREATED,
		CreatedAt: time.Now().UnixNano(), Image: cfg.GetImage(), ImageRef: b.Image(), ImageId: b.Image(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), LogPath: cfg.GetLogPath(),
	}
	b.ctrPod[bid] = podID
	b.ctrLabel[bid] = cfg.GetLabels()
	b.emitLocked(bid, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return bid, nil
}

// StartContainer implements runtimes.Backend.
func (b *Backend) StartContainer(ctx context.Context, id string) error {
	if err := b.enter("StartContainer", id); err != nil {
		return err
	}
	defer b.mu.Unlock()
	c, ok := b.ctrs[id]
	if !ok {
		return b.notFound("container", id)
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		return fmt.Errorf("fake %s: container %s is %s: %w", b.name, id, c.State, runtimes.ErrPrecondition)
	}
	c.State, c.StartedAt = runtimeapi.ContainerState_CONTAINER_RUNNING, time.Now().UnixNano()
	b.emitLocked(id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return nil
}

// StopContainer implements runtimes.Backend.
func (b *Backend) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	if err := b.enter("StopContainer", id); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if _, ok := b.ctrs[id]; !ok {
		return b.notFound("container", id)
	}
	b.stopLocked(id)
	return nil
}

func (b *Backend) stopLocked(id string) {
	c := b.ctrs[id]
	if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		c.State, c.FinishedAt, c.ExitCode, c.Reason = runtimeapi.ContainerState_CONTAINER_EXITED, time.Now().UnixNano(), 137, "Stopped"
		b.emitLocked(id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
}

// RemoveContainer implements runtimes.Backend.
func (b *Backend) RemoveContainer(ctx context.Context, id string) error {
	if err := b.enter("RemoveContainer", id); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if _, ok := b.ctrs[id]; !ok {
		return b.notFound("container", id)
	}
	b.deleteCtrLocked(id)
	return nil
}

func (b *Backend) deleteCtrLocked(id string) {
	b.emitLocked(id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	delete(b.ctrs, id)
	delete(b.ctrPod, id)
	delete(b.ctrLabel, id)
}

// ContainerStatus implements runtimes.Backend.
func (b *Backend) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	if err := b.enter("ContainerStatus", id); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	c, ok := b.ctrs[id]
	if !ok {
		return nil, b.notFound("container", id)
	}
	return &runtimeapi.ContainerStatusResponse{Status: cloneCtr(c)}, nil
}

// ListContainers implements runtimes.Backend.
func (b *Backend) ListContainers(ctx context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	if err := b.enter("ListContainers", f.GetId()+" "+f.GetPodSandboxId()); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	var out []*runtimeapi.Container
	for _, id := range sortedKeys(b.ctrs) {
		c := b.ctrs[id]
		if f.GetId() != "" && f.GetId() != id || f.GetPodSandboxId() != "" && f.GetPodSandboxId() != b.ctrPod[id] ||
			f.GetState() != nil && f.GetState().State != c.State || !matches(f.GetLabelSelector(), c.Labels) {
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id: id, PodSandboxId: b.ctrPod[id], Metadata: c.Metadata, Image: c.Image, ImageRef: c.ImageRef,
			ImageId: c.ImageId, State: c.State, CreatedAt: c.CreatedAt, Labels: c.Labels, Annotations: c.Annotations,
		})
	}
	return out, nil
}

// ExecSync implements runtimes.Execer: stdout is the command line.
func (b *Backend) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	if err := b.enter("ExecSync", id); err != nil {
		return nil, nil, 0, err
	}
	defer b.mu.Unlock()
	if _, ok := b.ctrs[id]; !ok {
		return nil, nil, 0, b.notFound("container", id)
	}
	return []byte(strings.Join(cmd, " ")), nil, 0, nil
}

// StreamingRuntime implements runtimes.StreamingRuntime.
func (b *Backend) StreamingRuntime() streaming.Runtime { return &streamer{b} }

// streamer answers exec and attach with "<backend id>: <cmd>\n" on stdout,
// then echoes stdin to stdout until EOF.
type streamer struct{ b *Backend }

func (s *streamer) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if err := s.b.enter("Exec", id); err != nil {
		return err
	}
	_, ok := s.b.ctrs[id]
	s.b.mu.Unlock()
	if !ok {
		return s.b.notFound("container", id)
	}
	fmt.Fprintf(out, "%s: %s\n", id, strings.Join(cmd, " "))
	if in != nil {
		io.Copy(out, in)
	}
	return nil
}

func (s *streamer) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return s.Exec(ctx, id, []string{"attach"}, in, out, errw, tty, resize)
}

func (s *streamer) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	if err := s.b.enter("PortForward", podID); err != nil {
		return err
	}
	s.b.mu.Unlock()
	_, err := io.Copy(stream, stream)
	return err
}

// ListImages implements runtimes.Images.
func (b *Backend) ListImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if err := b.enter("ListImages", ""); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	return []*runtimeapi.Image{b.imageLocked()}, nil
}

func (b *Backend) imageLocked() *runtimeapi.Image {
	return &runtimeapi.Image{Id: b.Image(), RepoTags: []string{b.Image()}, Size: 1, Pinned: true}
}

// ImageStatus implements runtimes.Images: a missing image is a nil Image.
func (b *Backend) ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	if err := b.enter("ImageStatus", spec.GetImage()); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if spec.GetImage() != b.Image() {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: b.imageLocked()}, nil
}

// PullImage implements runtimes.Images: only the fake's own image exists.
func (b *Backend) PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	if err := b.enter("PullImage", spec.GetImage()); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	if spec.GetImage() != b.Image() {
		return "", fmt.Errorf("fake %s: image %q: %w", b.name, spec.GetImage(), runtimes.ErrNotFound)
	}
	return b.Image(), nil
}

// RemoveImage implements runtimes.Images.
func (b *Backend) RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error {
	if err := b.enter("RemoveImage", spec.GetImage()); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if spec.GetImage() == b.Image() {
		return fmt.Errorf("fake %s: image %s is pinned: %w", b.name, b.Image(), runtimes.ErrPrecondition)
	}
	return nil
}

// ImageFsInfo implements runtimes.Images.
func (b *Backend) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	if err := b.enter("ImageFsInfo", ""); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp: time.Now().UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/fake/" + b.name},
	}}}, nil
}

// ContainerEvents implements runtimes.Events.
func (b *Backend) ContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse) error {
	if err := b.enter("ContainerEvents", ""); err != nil {
		return err
	}
	b.subs = append(b.subs, ch)
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	for i, c := range b.subs {
		if c == ch {
			b.subs = append(b.subs[:i], b.subs[i+1:]...)
			break
		}
	}
	b.mu.Unlock()
	return ctx.Err()
}

// emitLocked sends without blocking: a slow subscriber loses events, as
// with a real runtime's bounded queue.
func (b *Backend) emitLocked(id string, t runtimeapi.ContainerEventType) {
	ev := &runtimeapi.ContainerEventResponse{
		ContainerId: id, ContainerEventType: t, CreatedAt: time.Now().UnixNano(),
		PodSandboxStatus: clonePod(b.pods[b.ctrPod[id]]),
	}
	if c := b.ctrs[id]; c != nil {
		ev.ContainersStatuses = []*runtimeapi.ContainerStatus{cloneCtr(c)}
	}
	for _, ch := range b.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func clonePod(p *runtimeapi.PodSandboxStatus) *runtimeapi.PodSandboxStatus {
	if p == nil {
		return nil
	}
	return proto.Clone(p).(*runtimeapi.PodSandboxStatus)
}

func cloneCtr(s *runtimeapi.ContainerStatus) *runtimeapi.ContainerStatus {
	return proto.Clone(s).(*runtimeapi.ContainerStatus)
}
