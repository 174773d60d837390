package remote

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer creates the container in the remote pod podID (a remote
// ID); Corral's id is not sent.
func (b *Backend) CreateContainer(ctx context.Context, id, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := b.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		return "", b.wrap("create container", cfg.GetMetadata().GetName()+" in pod "+podID, err)
	}
	return resp.GetContainerId(), nil
}

func (b *Backend) StartContainer(ctx context.Context, id string) error {
	_, err := b.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	return b.wrap("start container", id, err)
}

// StopContainer passes the timeout in whole seconds, as the CRI does;
// kubelet's own deadline is on ctx.
func (b *Backend) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	_, err := b.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: int64(timeout / time.Second)})
	return b.wrap("stop container", id, err)
}

// removeRetries bounds RemoveContainer's retries of a "still running"
// answer (about 1.3 s in all with the growing pause).
const removeRetries = 10

// RemoveContainer removes a container even if it runs, as the CRI requires
// (containerd kills it first). containerd 2.4 has a window after a
// container exited on its own: its exit handler has deleted the task but
// not yet marked the container exited, so RemoveContainer's forced stop
// finds no task and returns, and the removal itself is refused with
// "container is still running, to stop first". critest's "Image Identifier
// Consistency" spec (a `sh` that exits at once, removed half a second
// later) hit it on a loaded machine. The answer is transient: stop again
// (a no-op or the kill that was meant) and retry, for a bounded time.
func (b *Backend) RemoveContainer(ctx context.Context, id string) error {
	var err error
	for i := 0; ; i++ {
		_, err = b.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
		if err == nil || !stillRunning(err) || i == removeRetries {
			break
		}
		b.log.Debug("remote: container still running at remove, stopping and retrying", "backend", b.kind, "container", id, "err", err)
		b.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id})
		select {
		case <-ctx.Done():
			return b.wrap("remove container", id, err)
		case <-time.After(time.Duration(i+1) * 25 * time.Millisecond):
		}
	}
	return b.wrap("remove container", id, err)
}

// stillRunning is containerd's refusal to remove a container it still
// believes running (an Unknown code: only the message tells).
func stillRunning(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Unknown && strings.Contains(s.Message(), "still running")
}

func (b *Backend) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	resp, err := b.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: verbose})
	if err != nil {
		return nil, b.wrap("container status", id, err)
	}
	return resp, nil
}

func (b *Backend) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	resp, err := b.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
	if err != nil {
		return nil, b.wrap("list containers", "", err)
	}
	return resp.GetContainers(), nil
}

// ExecSync's error is only for the call; the command's failure is its exit
// code.
func (b *Backend) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	resp, err := b.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: int64(timeout / time.Second)})
	if err != nil {
		return nil, nil, 0, b.wrap("exec sync", id, err)
	}
	return resp.GetStdout(), resp.GetStderr(), resp.GetExitCode(), nil
}

// Exec returns the remote's streaming URL.
func (b *Backend) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	resp, err := b.rt.Exec(ctx, req)
	return resp, b.wrap("exec", req.GetContainerId(), err)
}

// Attach returns the remote's streaming URL.
func (b *Backend) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	resp, err := b.rt.Attach(ctx, req)
	return resp, b.wrap("attach", req.GetContainerId(), err)
}

func (b *Backend) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	resp, err := b.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		return nil, b.wrap("container stats", id, err)
	}
	return resp.GetStats(), nil
}

func (b *Backend) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	resp, err := b.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	if err != nil {
		return nil, b.wrap("list container stats", "", err)
	}
	return resp.GetStats(), nil
}

func (b *Backend) UpdateContainerResources(ctx context.Context, id string, linux *runtimeapi.LinuxContainerResources) error {
	_, err := b.rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: linux})
	return b.wrap("update container resources", id, err)
}

func (b *Backend) ReopenContainerLog(ctx context.Context, id string) error {
	_, err := b.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
	return b.wrap("reopen container log", id, err)
}
