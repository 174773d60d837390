// Package remote is the runtime backend for container pods: it forwards
// every CRI call to a remote CRI v1 endpoint, containerd's CRI plugin or
// iSulad, over its unix socket. One Backend serves one Corral runtime
// handler.
//
// Forwarding instead of re-implementing is what gives container pods full
// CRI conformance: the remote runtime already passes critest, and Corral
// adds only routing and its own IDs (the cri package maps them; this
// backend sees and returns the remote's IDs). Streaming URLs are the
// remote's own, so exec/attach/port-forward traffic never passes through
// the agent.
//
// The remote may come and go (containerd runs as a Corral unit and is
// restarted when it dies): the connection is dialled lazily, retried with a
// short backoff, and Ready says why it is not usable meanwhile. Nothing
// here needs the remote at start-up.
package remote

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// Backend kinds served by this package; the names match corral.toml.
const (
	KindContainerd = "containerd"
	KindIsulad     = "isulad"
)

// Default sockets of the two remotes.
const (
	DefaultContainerdAddress = "/run/containerd/containerd.sock"
	DefaultIsuladAddress     = "unix:///var/run/isulad.sock"
)

// IsuladHandlers are the runtime handler names iSulad understands out of
// the box (lcr is its own liblxc runtime). iSulad does not list its
// handlers in Status, so a Corral handler with one of these names is passed
// through as is; any other name selects iSulad's default runtime.
var IsuladHandlers = []string{"lcr", "runc", "kata"}

// maxMsgSize matches the CRI server's bound: list answers on a busy node
// exceed gRPC's 4 MiB default.
const maxMsgSize = 16 << 20

// Config describes one remote endpoint.
type Config struct {
	// Kind is KindContainerd or KindIsulad (reported as Name).
	Kind string
	// Handler is the Corral runtime handler this backend serves; pods it
	// lists report it as their runtime_handler.
	Handler string
	// Address is the remote socket: a path or a unix:// URL. Empty means
	// the kind's default.
	Address string
	// RemoteHandlers are handler names the remote is known to accept even
	// if its Status does not list them (IsuladHandlers for iSulad).
	RemoteHandlers []string
	// RetryDelay caps the reconnect backoff and the events reconnect delay
	// (default 1s): the remote must be usable again soon after it is back.
	RetryDelay time.Duration
	Log        *slog.Logger
}

// Backend forwards to one remote CRI endpoint.
type Backend struct {
	kind, handler string
	target, path  string // gRPC target (unix://...) and socket path
	retry         time.Duration
	log           *slog.Logger

	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient

	mu    sync.Mutex
	known map[string]bool // handler names the remote accepts
}

var (
	_ runtimes.Backend        = (*Backend)(nil)
	_ runtimes.Execer         = (*Backend)(nil)
	_ runtimes.Streamer       = (*Backend)(nil)
	_ runtimes.Stats          = (*Backend)(nil)
	_ runtimes.Updater        = (*Backend)(nil)
	_ runtimes.LogReopener    = (*Backend)(nil)
	_ runtimes.Images         = (*Backend)(nil)
	_ runtimes.Events         = (*Backend)(nil)
	_ runtimes.NetworkReadier = (*Backend)(nil)
)

// New prepares the client; it does not connect (the remote may not be up
// yet, e.g. while its unit starts).
func New(cfg Config) (*Backend, error) {
	switch cfg.Kind {
	case KindContainerd:
		if cfg.Address == "" {
			cfg.Address = DefaultContainerdAddress
		}
	case KindIsulad:
		if cfg.Address == "" {
			cfg.Address = DefaultIsuladAddress
		}
		if cfg.RemoteHandlers == nil {
			cfg.RemoteHandlers = IsuladHandlers
		}
	default:
		return nil, fmt.Errorf("remote backend: unknown kind %q (want %s or %s)", cfg.Kind, KindContainerd, KindIsulad)
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	path, ok := strings.CutPrefix(cfg.Address, "unix://")
	if !ok && strings.Contains(cfg.Address, "://") {
		return nil, fmt.Errorf("remote backend %s: address %q: only unix sockets are supported", cfg.Kind, cfg.Address)
	}
	b := &Backend{
		kind: cfg.Kind, handler: cfg.Handler, target: "unix://" + path, path: path,
		retry: cfg.RetryDelay, log: cfg.Log, known: map[string]bool{},
	}
	for _, h := range cfg.RemoteHandlers {
		b.known[h] = true
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 50*time.Millisecond, cfg.RetryDelay
	conn, err := grpc.NewClient(b.target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 2 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("remote backend %s at %s: %w", cfg.Kind, cfg.Address, err)
	}
	b.conn = conn
	b.rt = runtimeapi.NewRuntimeServiceClient(conn)
	b.img = runtimeapi.NewImageServiceClient(conn)
	return b, nil
}

// Close drops the connection.
func (b *Backend) Close() error { return b.conn.Close() }

// Name is the backend kind.
func (b *Backend) Name() string { return b.kind }

// Address is the socket path of the remote (for `corralctl image import`).
func (b *Backend) Address() string { return b.path }

// Ready is true when the remote answers Status with RuntimeReady. While its
// socket is missing (its unit is down or still starting) the reason is
// SocketMissing; when it does not answer, RemoteUnreachable; when it says
// it is not ready, its own reason.
func (b *Backend) Ready(ctx context.Context) (bool, string, string) {
	st, reason, msg := b.status(ctx)
	if st == nil {
		return false, reason, msg
	}
	b.learnHandlers(st)
	return conditionOf(st, runtimeapi.RuntimeReady, b.kind)
}

// NetworkReady forwards the remote's NetworkReady condition: pod networking
// of container pods is the remote's CNI set-up, not Corral's.
func (b *Backend) NetworkReady(ctx context.Context) (bool, string, string) {
	st, reason, msg := b.status(ctx)
	if st == nil {
		return false, reason, msg
	}
	return conditionOf(st, runtimeapi.NetworkReady, b.kind)
}

func (b *Backend) status(ctx context.Context) (*runtimeapi.StatusResponse, string, string) {
	if _, err := os.Stat(b.path); err != nil {
		return nil, "SocketMissing", fmt.Sprintf("%s socket %s: %v", b.kind, b.path, err)
	}
	st, err := b.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, "RemoteUnreachable", fmt.Sprintf("%s at %s: %v", b.kind, b.path, err)
	}
	return st, "", ""
}

func conditionOf(st *runtimeapi.StatusResponse, typ, kind string) (bool, string, string) {
	for _, c := range st.GetStatus().GetConditions() {
		if c.GetType() == typ {
			if c.GetStatus() {
				return true, "", ""
			}
			return false, c.GetReason(), fmt.Sprintf("%s: %s", kind, c.GetMessage())
		}
	}
	return false, "ConditionMissing", fmt.Sprintf("%s reports no %s condition", kind, typ)
}

// learnHandlers remembers the handler names the remote lists in Status
// (containerd does, iSulad does not).
func (b *Backend) learnHandlers(st *runtimeapi.StatusResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range st.GetRuntimeHandlers() {
		if h.GetName() != "" {
			b.known[h.GetName()] = true
		}
	}
}

// remoteHandler translates a Corral handler name: a name the remote knows
// (containerd's "runc", iSulad's "lcr") is passed through; any other
// ("isulad", "containers") selects the remote's default runtime.
func (b *Backend) remoteHandler(ctx context.Context, h string) string {
	if h == "" {
		return ""
	}
	b.mu.Lock()
	ok, learned := b.known[h], len(b.known) > 0
	b.mu.Unlock()
	if !ok && !learned {
		if st, _, _ := b.status(ctx); st != nil {
			b.learnHandlers(st)
			b.mu.Lock()
			ok = b.known[h]
			b.mu.Unlock()
		}
	}
	if ok {
		return h
	}
	return ""
}
