// Changes for backend authors (CRI server engineer):
//   - StreamingRuntime: a backend that serves exec/attach/port-forward
//     through Corral's own streaming server returns a streaming.Runtime of
//     k8s.io/cri-streaming; the server calls it with backend IDs. Streamer
//     stays for backends with a streaming server of their own (containerd).
//   - NetworkReadier: optional; its answer becomes the CRI NetworkReady
//     condition (otherwise: any CNI config in the configured conf dir).
//   - Errors: context.DeadlineExceeded/Canceled map to their codes too.

// Package runtimes defines the one small interface every instance backend
// (native host services, containerd, iSulad, QEMU microVMs) implements, so
// that the CRI server routes a pod to a backend and never knows which kind
// it is.
//
// The shape follows containerd's sandbox controller: a handful of ctx-first
// lifecycle methods for a sandbox and its containers, with every optional
// ability (exec, attach, port-forward, stats, live resource update, images,
// events) as a separate small interface that a backend may or may not
// implement. The CRI server checks for them with type assertions and answers
// Unimplemented for a backend without them.
//
// Requests and results use the CRI v1 message types (k8s.io/cri-api): every
// backend either speaks CRI already (containerd, iSulad) or has to produce
// exactly what kubelet expects (native, qemu), so a second set of structs
// would only be a translation layer to keep in sync.
//
// IDs: the CRI server owns the IDs kubelet sees. It passes its own ID to the
// backend on creation; a backend returns the ID it uses internally (the same
// one, for native and qemu; containerd's own, for remote CRI), and the server
// keeps the mapping in the state DB. Every other call receives the backend's
// ID. Errors wrap the sentinels below, never gRPC status codes: the CRI edge
// wrapper maps them.
package runtimes

import (
	"context"
	"errors"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
)

// Errors a backend wraps (with %w) so that the CRI edge picks the gRPC code.
var (
	ErrNotFound     = errors.New("not found")           // NotFound
	ErrInvalid      = errors.New("invalid argument")    // InvalidArgument
	ErrExists       = errors.New("already exists")      // AlreadyExists
	ErrUnavailable  = errors.New("backend unavailable") // Unavailable
	ErrUnsupported  = errors.New("not supported")       // Unimplemented
	ErrPrecondition = errors.New("failed precondition") // FailedPrecondition
)

// Backend runs pods of one kind.
type Backend interface {
	// Name is the backend kind ("native", "containerd", "isulad", "qemu").
	Name() string
	// Ready reports whether the backend can take requests; when it cannot,
	// reason and message say why (shown in CRI Status conditions).
	Ready(ctx context.Context) (ok bool, reason, message string)

	RunPodSandbox(ctx context.Context, id string, cfg *runtimeapi.PodSandboxConfig, handler string) (backendID string, err error)
	StopPodSandbox(ctx context.Context, id string) error
	RemovePodSandbox(ctx context.Context, id string) error
	PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error)
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)

	CreateContainer(ctx context.Context, id, podID string, cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig) (backendID string, err error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
	ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error)
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
}

// Execer runs a command in a container and waits for it (ExecSync).
type Execer interface {
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error)
}

// Streamer serves Exec, Attach and PortForward. A backend either returns a
// URL of its own streaming server (containerd), or implements the
// streaming.Runtime of k8s.io/cri-streaming and lets Corral's streaming
// server (native, qemu) produce the URL.
type Streamer interface {
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// StreamingRuntime lets Corral's streaming server (k8s.io/cri-streaming,
// SPDY and WebSocket) serve Exec, Attach and PortForward for the backend, so
// that native and qemu need no protocol code. The returned Runtime receives
// backend container and sandbox IDs. Backends implement either this or
// Streamer; when both, Streamer wins.
type StreamingRuntime interface {
	StreamingRuntime() streaming.Runtime
}

// NetworkReadier reports whether pod networking works for the backend
// (e.g. CNI is configured); without it the CRI server looks for a CNI
// configuration file.
type NetworkReadier interface {
	NetworkReady(ctx context.Context) (ok bool, reason, message string)
}

// Stats reports resource usage from cgroups (or the backend's own stats).
type Stats interface {
	ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error)
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error)
	ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error)
}

// Updater changes a running container's resources.
type Updater interface {
	UpdateContainerResources(ctx context.Context, id string, linux *runtimeapi.LinuxContainerResources) error
}

// LogReopener reopens a container's log file after kubelet rotated it.
type LogReopener interface {
	ReopenContainerLog(ctx context.Context, id string) error
}

// Images is the image service of a backend.
type Images interface {
	ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
	ImageStatus(ctx context.Context, spec *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error)
	PullImage(ctx context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podCfg *runtimeapi.PodSandboxConfig) (string, error)
	RemoveImage(ctx context.Context, spec *runtimeapi.ImageSpec) error
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

// Events streams container lifecycle events (GetContainerEvents). The
// backend sends until ctx is done; IDs in events are backend IDs.
type Events interface {
	ContainerEvents(ctx context.Context, ch chan<- *runtimeapi.ContainerEventResponse) error
}
