package cri

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/state"
	"corral.io/corral/runtimes"
	"corral.io/corral/runtimes/fake"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"))
}

// env is a CRI server over a real unix socket with three fake backends:
// "native" (the default), "vm", and "basic" (no optional abilities).
type env struct {
	t       *testing.T
	dir     string
	native  *fake.Backend
	vm      *fake.Backend
	basic   *fake.Backend
	db      *state.DB
	rt      runtimeapi.RuntimeServiceClient
	img     runtimeapi.ImageServiceClient
	srv     *Server
	def     string
	extra   map[string]runtimes.Backend
	cniDir  string
	stopSrv func()
}

type option func(*env)

func withDefault(h string) option { return func(e *env) { e.def = h } }

func withBackend(h string, b runtimes.Backend) option {
	return func(e *env) {
		if e.extra == nil {
			e.extra = map[string]runtimes.Backend{}
		}
		e.extra[h] = b
	}
}

func newTestService(t *testing.T, opts ...option) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), native: fake.New("native"), vm: fake.New("vm"), basic: fake.New("basic"), def: "native"}
	e.cniDir = filepath.Join(e.dir, "cni")
	for _, o := range opts {
		o(e)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	t := e.t
	t.Helper()
	db, err := state.Open(filepath.Join(e.dir, "run", "corral", "state.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	backends := map[string]runtimes.Backend{"native": e.native, "vm": e.vm, "basic": fake.Basic(e.basic)}
	for h, b := range e.extra {
		backends[h] = b
	}
	srv, err := New(Options{
		Backends:       backends,
		DefaultHandler: e.def, Store: db, CNIConfDir: e.cniDir, Version: "test",
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	l, err := Listen(SocketPath(e.dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	conn, err := grpc.NewClient("unix://"+SocketPath(e.dir),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	e.rt, e.img = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	e.stopSrv = func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		db.Close()
	}
}

func (e *env) stop() {
	if e.stopSrv != nil {
		e.stopSrv()
		e.stopSrv = nil
	}
}

// restart stops the server and starts a new one on the same state DB and
// the same (still running) backends.
func (e *env) restart() { e.stop(); e.start() }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func podConfig(name string, ann map[string]string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Annotations:  ann,
		LogDirectory: "/var/log/pods/default_" + name,
	}
}

func (e *env) runPod(name, handler string, ann map[string]string) string {
	e.t.Helper()
	r, err := e.rt.RunPodSandbox(ctx(e.t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(name, ann), RuntimeHandler: handler})
	if err != nil {
		e.t.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	return r.PodSandboxId
}

func (e *env) createContainer(pod, name string, b *fake.Backend) string {
	e.t.Helper()
	r, err := e.rt.CreateContainer(ctx(e.t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Image:    &runtimeapi.ImageSpec{Image: b.Image()},
			LogPath:  name + "/0.log",
		},
		SandboxConfig: podConfig("p", nil),
	})
	if err != nil {
		e.t.Fatalf("CreateContainer %s: %v", name, err)
	}
	return r.ContainerId
}

// wantCode fails unless err has code c and its message contains every
// substring in msgs.
func wantCode(t *testing.T, err error, c codes.Code, msgs ...string) {
	t.Helper()
	if got := status.Code(err); got != c {
		t.Fatalf("code = %s (%v), want %s", got, err, c)
	}
	for _, m := range msgs {
		if !strings.Contains(status.Convert(err).Message(), m) {
			t.Errorf("message %q does not contain %q", status.Convert(err).Message(), m)
		}
	}
}

func isCorralID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
