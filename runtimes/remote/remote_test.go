package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCRI is a remote CRI endpoint on a real unix socket. It records what
// it was asked and answers from its fields.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	mu         sync.Mutex
	ready      bool
	handlers   []string
	gotHandler []string // RunPodSandbox runtime_handler, in order
	gotImageH  []string // PullImage runtime_handler
	fail       error    // returned by every pod/container call when set
	events     chan *runtimeapi.ContainerEventResponse
	features   map[string]*runtimeapi.RuntimeHandlerFeatures // by remote handler name
	pods       []*runtimeapi.PodSandbox                      // ListPodSandbox's answer when set
	removed    []string                                      // RemovePodSandbox IDs, in order
	stillRun   int                                           // RemoveContainer refusals ("still running") left
	ctrStops   int                                           // StopContainer calls
}

func (f *fakeCRI) StopPodSandbox(context.Context, *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeCRI) RemovePodSandbox(_ context.Context, r *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, r.GetPodSandboxId())
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeCRI) StopContainer(context.Context, *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctrStops++
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer refuses like containerd in the window after a container
// exited on its own, stillRun times.
func (f *fakeCRI) RemoveContainer(_ context.Context, r *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stillRun > 0 {
		f.stillRun--
		return nil, status.Errorf(codes.Unknown, "failed to set removing state for container %q: container is still running, to stop first", r.GetContainerId())
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (f *fakeCRI) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: f.ready, Reason: map[bool]string{false: "FakeNotReady"}[f.ready], Message: "fake says so"},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}}
	st.RuntimeHandlers = append(st.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: "", Features: f.features[""]})
	for _, h := range f.handlers {
		st.RuntimeHandlers = append(st.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: h, Features: f.features[h]})
	}
	st.Features = &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}
	return st, nil
}

func (f *fakeCRI) RunPodSandbox(_ context.Context, r *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.gotHandler = append(f.gotHandler, r.GetRuntimeHandler())
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: "remote-pod-1"}, nil
}

func (f *fakeCRI) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: r.GetContainerId()}}, nil
}

func (f *fakeCRI) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pods != nil {
		return &runtimeapi.ListPodSandboxResponse{Items: f.pods}, nil
	}
	return &runtimeapi.ListPodSandboxResponse{Items: []*runtimeapi.PodSandbox{{Id: "remote-pod-1", RuntimeHandler: "runc"}}}, nil
}

func (f *fakeCRI) Exec(_ context.Context, r *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return &runtimeapi.ExecResponse{Url: "http://127.0.0.1:1/exec/" + r.GetContainerId()}, nil
}

func (f *fakeCRI) PullImage(_ context.Context, r *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotImageH = append(f.gotImageH, r.GetImage().GetRuntimeHandler())
	return &runtimeapi.PullImageResponse{ImageRef: "sha256:abc"}, nil
}

func (f *fakeCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	for {
		select {
		case <-s.Context().Done():
			return nil
		case e := <-f.events:
			if err := s.Send(e); err != nil {
				return err
			}
		}
	}
}

// serve starts answering on sock; stop ends it and removes the socket, as a
// dying containerd would leave things.
func (f *fakeCRI) serve(t *testing.T, sock string) (stop func()) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	runtimeapi.RegisterImageServiceServer(srv, f)
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { srv.Stop(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func newFake(handlers ...string) *fakeCRI {
	return &fakeCRI{ready: true, handlers: handlers, events: make(chan *runtimeapi.ContainerEventResponse, 8)}
}

func newBackend(t *testing.T, kind, handler, sock string) *Backend {
	t.Helper()
	b, err := New(Config{Kind: kind, Handler: handler, Address: sock, RetryDelay: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// eventually polls f; the deadline only prevents a hang.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func readyErr(b *Backend, wantOK bool, wantReason string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ok, reason, msg := b.Ready(ctx)
		if ok != wantOK || reason != wantReason {
			return errors.New("ready=" + map[bool]string{true: "true", false: "false"}[ok] + " reason=" + reason + " message=" + msg)
		}
		return nil
	}
}

// The remote may be absent at start, come up, say it is not ready, die and
// come back: Ready follows each step with no new Backend.
func TestReadyFollowsTheRemote(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	b := newBackend(t, KindContainerd, "runc", sock)
	eventually(t, "socket missing", readyErr(b, false, "SocketMissing"))

	f := newFake("runc")
	stop := f.serve(t, sock)
	eventually(t, "remote up", readyErr(b, true, ""))

	f.mu.Lock()
	f.ready = false
	f.mu.Unlock()
	eventually(t, "remote not ready", readyErr(b, false, "FakeNotReady"))
	f.mu.Lock()
	f.ready = true
	f.mu.Unlock()

	stop()
	staleSocket(t, sock) // what a killed remote leaves behind
	eventually(t, "remote dead", readyErr(b, false, "RemoteUnreachable"))
	newFake("runc").serve(t, sockAgain(t, sock))
	eventually(t, "remote back", readyErr(b, true, ""))
}

// sockAgain removes a stale socket file so that the next server can bind.
func sockAgain(t *testing.T, sock string) string {
	t.Helper()
	os.Remove(sock)
	return sock
}

// staleSocket leaves a socket file that nobody listens on.
func staleSocket(t *testing.T, sock string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
}

func TestHandlerTranslation(t *testing.T) {
	for _, tc := range []struct {
		name, kind, handler string
		remoteLists         []string
		want                string
	}{
		{"containerd knows runc", KindContainerd, "runc", []string{"runc"}, "runc"},
		{"containerd default for unknown name", KindContainerd, "containers", []string{"runc"}, ""},
		{"empty stays empty", KindContainerd, "", []string{"runc"}, ""},
		{"isulad lcr passes without Status list", KindIsulad, "lcr", nil, "lcr"},
		{"isulad kata", KindIsulad, "kata", nil, "kata"},
		{"isulad handler name selects its default", KindIsulad, "isulad", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "cri.sock")
			f := newFake(tc.remoteLists...)
			f.serve(t, sock)
			b := newBackend(t, tc.kind, tc.handler, "unix://"+sock)
			ctx := context.Background()
			id, err := b.RunPodSandbox(ctx, "corral-id", &runtimeapi.PodSandboxConfig{}, tc.handler)
			if err != nil {
				t.Fatal(err)
			}
			if id != "remote-pod-1" {
				t.Errorf("backend ID = %q, want the remote's", id)
			}
			if _, err := b.PullImage(ctx, &runtimeapi.ImageSpec{Image: "busybox", RuntimeHandler: tc.handler}, nil, nil); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.gotHandler) != 1 || f.gotHandler[0] != tc.want {
				t.Errorf("remote got pod handler %q, want %q", f.gotHandler, tc.want)
			}
			if len(f.gotImageH) != 1 || f.gotImageH[0] != tc.want {
				t.Errorf("remote got image handler %q, want %q", f.gotImageH, tc.want)
			}
		})
	}
}

func TestErrorsMapToSentinels(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	f := newFake("runc")
	f.serve(t, sock)
	b := newBackend(t, KindContainerd, "runc", sock)
	for _, tc := range []struct {
		code codes.Code
		want error
	}{
		{codes.NotFound, runtimes.ErrNotFound},
		{codes.InvalidArgument, runtimes.ErrInvalid},
		{codes.AlreadyExists, runtimes.ErrExists},
		{codes.Unimplemented, runtimes.ErrUnsupported},
		{codes.FailedPrecondition, runtimes.ErrPrecondition},
		{codes.Unavailable, runtimes.ErrUnavailable},
		{codes.DeadlineExceeded, context.DeadlineExceeded},
	} {
		f.mu.Lock()
		f.fail = status.Error(tc.code, "remote message")
		f.mu.Unlock()
		_, err := b.ContainerStatus(context.Background(), "c1", false)
		if !errors.Is(err, tc.want) {
			t.Errorf("%v: err = %v, want it to wrap %v", tc.code, err, tc.want)
		}
	}
	// Codes without a sentinel keep their status and the remote's message.
	f.mu.Lock()
	f.fail = status.Error(codes.Internal, "shim exploded")
	f.mu.Unlock()
	_, err := b.ContainerStatus(context.Background(), "c1", false)
	if s, _ := status.FromError(err); s.Code() != codes.Internal || s.Message() != "containerd container status c1: shim exploded" {
		t.Errorf("internal error = %v", err)
	}
}

// Pods report Corral's handler name; streaming URLs are the remote's.
func TestForwarding(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	newFake("runc").serve(t, sock)
	b := newBackend(t, KindIsulad, "isulad", sock)
	ctx := context.Background()
	pods, err := b.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 || pods[0].GetRuntimeHandler() != "isulad" {
		t.Errorf("pods = %v, want one with runtime_handler isulad", pods)
	}
	r, err := b.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "c9", Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetUrl() != "http://127.0.0.1:1/exec/c9" {
		t.Errorf("exec URL = %q, want the remote's", r.GetUrl())
	}
	if b.Name() != KindIsulad || b.Address() != sock {
		t.Errorf("name/address = %s %s", b.Name(), b.Address())
	}
}

// Events keep flowing across a restart of the remote.
func TestEventsReconnect(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	f := newFake("runc")
	stop := f.serve(t, sock)
	b := newBackend(t, KindContainerd, "runc", sock)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan *runtimeapi.ContainerEventResponse, 8)
	done := make(chan error, 1)
	go func() { done <- b.ContainerEvents(ctx, ch) }()

	recv := func(want string) {
		t.Helper()
		select {
		case e := <-ch:
			if e.GetContainerId() != want {
				t.Fatalf("event for %q, want %q", e.GetContainerId(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for %s", want)
		}
	}
	f.events <- &runtimeapi.ContainerEventResponse{ContainerId: "before"}
	recv("before")
	stop()
	f2 := newFake("runc")
	f2.serve(t, sockAgain(t, sock))
	f2.events <- &runtimeapi.ContainerEventResponse{ContainerId: "after",
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: "p", RuntimeHandler: "runc"}}
	recv("after")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ContainerEvents returned %v, want context.Canceled", err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, c := range []Config{
		{Kind: "docker"},
		{Kind: KindContainerd, Address: "tcp://127.0.0.1:1"},
	} {
		if b, err := New(c); err == nil {
			b.Close()
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	b, err := New(Config{Kind: KindIsulad})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Address() != "/var/run/isulad.sock" {
		t.Errorf("isulad default address = %q", b.Address())
	}
}

func TestFeaturesOfTheMappedHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	f := newFake("runc")
	f.features = map[string]*runtimeapi.RuntimeHandlerFeatures{
		"":     {RecursiveReadOnlyMounts: true},
		"runc": {RecursiveReadOnlyMounts: true, UserNamespaces: true},
	}
	f.serve(t, sock)
	for _, tc := range []struct {
		handler string
		userns  bool
	}{{"runc", true}, {"isulad", false}} {
		b := newBackend(t, KindContainerd, tc.handler, sock)
		hf, rf, err := b.Features(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !hf.GetRecursiveReadOnlyMounts() || hf.GetUserNamespaces() != tc.userns || !rf.GetSupplementalGroupsPolicy() {
			t.Errorf("handler %s: features %v %v", tc.handler, hf, rf)
		}
	}
}

// A RemoveContainer that containerd refuses while it still believes the
// container runs (its exit handler is half done) is retried after a stop;
// a refusal that does not clear, or another error, is returned.
func TestRemoveContainerRetriesStillRunning(t *testing.T) {
	for _, tc := range []struct {
		name      string
		refusals  int
		fail      bool // the answer after the retries is still the refusal
		wantStops int
	}{
		{"removed at once", 0, false, 0},
		{"refused twice, then removed", 2, false, 2},
		{"refused for good", 100, true, removeRetries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "ctd.sock")
			f := newFake("runc")
			f.stillRun = tc.refusals
			f.serve(t, sock)
			b := newBackend(t, KindContainerd, "runc", sock)
			err := b.RemoveContainer(context.Background(), "c1")
			if (err != nil) != tc.fail {
				t.Fatalf("RemoveContainer = %v, want failure %v", err, tc.fail)
			}
			if tc.fail && status.Code(err) != codes.Unknown {
				t.Errorf("code = %v, want the remote's Unknown", status.Code(err))
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.ctrStops != tc.wantStops {
				t.Errorf("StopContainer calls = %d, want %d", f.ctrStops, tc.wantStops)
			}
		})
	}
}

// After a failed RunPodSandbox, a not-ready sandbox of the same pod and
// attempt that the call created is removed on the remote (containerd keeps
// one, its name reserved, when its own rollback fails); ready sandboxes,
// older ones and other pods are left alone.
func TestRunPodSandboxFailureRemovesLeftover(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ctd.sock")
	f := newFake("runc")
	f.fail = status.Error(codes.Unknown, "NRI RunPodSandbox failed: induced")
	md := &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "ns", Uid: "u1", Attempt: 1}
	other := func(change func(*runtimeapi.PodSandboxMetadata)) *runtimeapi.PodSandboxMetadata {
		m := &runtimeapi.PodSandboxMetadata{Name: md.Name, Namespace: md.Namespace, Uid: md.Uid, Attempt: md.Attempt}
		change(m)
		return m
	}
	future := time.Now().Add(time.Hour).UnixNano()
	notReady := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	f.pods = []*runtimeapi.PodSandbox{
		{Id: "leftover", Metadata: md, State: notReady, CreatedAt: future},
		{Id: "leftover-no-time", Metadata: md, State: notReady},
		{Id: "older", Metadata: md, State: notReady, CreatedAt: time.Now().Add(-time.Hour).UnixNano()},
		{Id: "ready", Metadata: md, State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: future},
		{Id: "other-name", Metadata: other(func(m *runtimeapi.PodSandboxMetadata) { m.Name = "db" }), State: notReady, CreatedAt: future},
		{Id: "other-attempt", Metadata: other(func(m *runtimeapi.PodSandboxMetadata) { m.Attempt = 2 }), State: notReady, CreatedAt: future},
		{Id: "other-uid", Metadata: other(func(m *runtimeapi.PodSandboxMetadata) { m.Uid = "u2" }), State: notReady, CreatedAt: future},
	}
	f.serve(t, sock)
	b := newBackend(t, KindContainerd, "runc", sock)
	if _, err := b.RunPodSandbox(context.Background(), "x", &runtimeapi.PodSandboxConfig{Metadata: md}, "runc"); err == nil {
		t.Fatal("RunPodSandbox succeeded, want the remote's failure")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := fmt.Sprint(f.removed); got != "[leftover leftover-no-time]" {
		t.Errorf("removed %s, want [leftover leftover-no-time]", got)
	}
}
