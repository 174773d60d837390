package apiserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/apiserver/apiservertest"
	corralv1 "corral.io/corral/api/corral/v1"
)

// childEnv makes the test binary act as an API client (run as another uid by
// TestNonRootIsReadOnly).
const childEnv = "APISERVER_TEST_CLIENT_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(childEnv); sock != "" {
		os.Exit(childClient(sock))
	}
	os.Exit(m.Run())
}

// childClient calls one read and one write method and prints each call's
// code and message, one line each.
func childClient(sock string) int {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println("dial:", err)
		return 1
	}
	defer conn.Close()
	c := corralv1.NewUnitServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.ListUnits(ctx, &corralv1.ListUnitsRequest{})
	fmt.Printf("ListUnits %s\n", status.Code(err))
	_, err = c.Start(ctx, &corralv1.JobRequest{Names: []string{"foo.service"}})
	st := status.Convert(err)
	fmt.Printf("Start %s %s\n", st.Code(), st.Message())
	return 0
}

func dial(t *testing.T, root string) (corralv1.UnitServiceClient, corralv1.SystemServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+apiserver.SocketPath(root), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return corralv1.NewUnitServiceClient(conn), corralv1.NewSystemServiceClient(conn)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func fooFake() *apiservertest.Fake {
	f := apiservertest.New()
	f.AddUnit(apiserver.UnitDetail{
		UnitSummary:  apiserver.UnitSummary{Name: "foo.service", Description: "Foo", LoadState: "loaded", ActiveState: "inactive", SubState: "dead"},
		FragmentPath: "/etc/corral/system/foo.service",
		Deps:         map[string][]string{"After": {"network.target"}, "WantedBy": {"multi-user.target"}},
	}, apiserver.UnitFile{Path: "/etc/corral/system/foo.service", Content: "[Service]\nExecStart=/bin/true"},
		apiserver.UnitFile{Path: "/etc/corral/system/foo.service.d/x.conf", Content: "[Unit]\nDescription=Foo\n"})
	f.AddUnit(apiserver.UnitDetail{UnitSummary: apiserver.UnitSummary{Name: "masked.service", LoadState: "masked", ActiveState: "inactive", SubState: "dead"}})
	return f
}

// TestNonRootIsReadOnly runs a client as uid 65534 in a child process: the
// kernel's SO_PEERCRED must make read calls succeed and writes fail with
// PermissionDenied naming the method, while root may write.
func TestNonRootIsReadOnly(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test must run as root to spawn a client with another uid")
	}
	// A world-traversable root, since t.TempDir is 0700.
	root, err := os.MkdirTemp("", "apiserver-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a 0700 build dir: copy it where nobody can exec it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "client.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	f := fooFake()
	l, err := apiserver.Listen(apiserver.SocketPath(root))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- apiserver.New(f, apiserver.Options{}).Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })

	fi, err := os.Stat(apiserver.SocketPath(root))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o666 {
		t.Errorf("socket mode = %o, want 666", got)
	}

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+apiserver.SocketPath(root))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child client: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "ListUnits OK" || !strings.HasPrefix(lines[1], "Start PermissionDenied ") ||
		!strings.Contains(lines[1], "/corral.v1.UnitService/Start") {
		t.Fatalf("child output:\n%s\nwant ListUnits OK and Start PermissionDenied naming the method", out)
	}
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, "Enqueue") {
			t.Errorf("manager got %q from an unprivileged caller", c)
		}
	}

	// Root may start.
	uc, _ := dial(t, root)
	resp, err := uc.Start(ctxT(t), &corralv1.JobRequest{Names: []string{"foo.service"}})
	if err != nil {
		t.Fatalf("root Start: %v", err)
	}
	if got := resp.GetJobs()[0].GetResult(); got != "done" {
		t.Errorf("root Start result = %q, want done", got)
	}
}

func TestErrorCodes(t *testing.T) {
	root := apiservertest.Serve(t, fooFake())
	uc, sc := dial(t, root)
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"get missing", func() error { _, err := uc.GetUnit(ctx, &corralv1.GetUnitRequest{Name: "nope.service"}); return err }, codes.NotFound},
		{"get empty name", func() error { _, err := uc.GetUnit(ctx, &corralv1.GetUnitRequest{}); return err }, codes.InvalidArgument},
		{"cat missing", func() error { _, err := uc.Cat(ctx, &corralv1.CatRequest{Names: []string{"nope.service"}}); return err }, codes.NotFound},
		{"bad job mode", func() error {
			_, err := uc.Start(ctx, &corralv1.JobRequest{Names: []string{"foo.service"}, JobMode: "bogus"})
			return err
		}, codes.InvalidArgument},
		{"isolate two", func() error {
			_, err := uc.Isolate(ctx, &corralv1.JobRequest{Names: []string{"a.target", "b.target"}})
			return err
		}, codes.InvalidArgument},
		{"kill whom", func() error {
			_, err := uc.Kill(ctx, &corralv1.KillRequest{Names: []string{"foo.service"}, Whom: "everyone"})
			return err
		}, codes.InvalidArgument},
		{"cancel missing job", func() error { _, err := uc.CancelJob(ctx, &corralv1.CancelJobRequest{Ids: []uint64{42}}); return err }, codes.NotFound},
		{"enable missing", func() error {
			_, err := uc.Enable(ctx, &corralv1.UnitFilesRequest{Names: []string{"nope.service"}})
			return err
		}, codes.NotFound},
		{"reexec", func() error { _, err := sc.Reexec(ctx, &corralv1.ReexecRequest{}); return err }, codes.Unimplemented},
		{"shutdown bad action", func() error { _, err := sc.Shutdown(ctx, &corralv1.ShutdownRequest{Action: "explode"}); return err }, codes.InvalidArgument},
		{"shutdown", func() error { _, err := sc.Shutdown(ctx, &corralv1.ShutdownRequest{Action: "exit"}); return err }, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.want {
				t.Errorf("code = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestJobOutcomes checks that a missing or refused unit is reported per unit
// while the other units still get their jobs.
func TestJobOutcomes(t *testing.T) {
	f := fooFake()
	root := apiservertest.Serve(t, f)
	uc, _ := dial(t, root)
	resp, err := uc.Start(ctxT(t), &corralv1.JobRequest{Names: []string{"nope.service", "foo.service", "masked.service"}, NoBlock: true})
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		Unit   string
		Code   codes.Code
		Result string
		HasJob bool
	}
	var got []outcome
	for _, j := range resp.GetJobs() {
		got = append(got, outcome{j.GetUnit(), codes.Code(j.GetErrorCode()), j.GetResult(), j.GetJobId() != 0})
	}
	want := []outcome{
		{"nope.service", codes.NotFound, "", false},
		{"foo.service", codes.OK, "", true},
		{"masked.service", codes.FailedPrecondition, "", false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if !containsCall(f.Calls(), "Enqueue foo.service start replace wait=false") {
		t.Errorf("calls %q lack the no-block start", f.Calls())
	}
	if _, err := uc.Isolate(ctxT(t), &corralv1.JobRequest{Names: []string{"foo.service"}, JobMode: "fail"}); err != nil {
		t.Fatal(err)
	}
	if !containsCall(f.Calls(), "Enqueue foo.service start isolate wait=true") {
		t.Errorf("calls %q lack the isolate job", f.Calls())
	}
}

func containsCall(calls []string, c string) bool {
	for _, x := range calls {
		if x == c {
			return true
		}
	}
	return false
}

func TestShowAndCat(t *testing.T) {
	root := apiservertest.Serve(t, fooFake())
	uc, _ := dial(t, root)
	ctx := ctxT(t)
	show, err := uc.Show(ctx, &corralv1.ShowRequest{Names: []string{"foo.service", "nope.service"}, Properties: []string{"ActiveState", "LoadState", "After", "MainPID"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range show.GetUnits() {
		for _, p := range u.GetProperties() {
			got[u.GetName()+" "+p.GetKey()] = p.GetValue()
		}
	}
	want := map[string]string{
		"foo.service ActiveState": "inactive", "foo.service LoadState": "loaded",
		"foo.service After": "network.target", "foo.service MainPID": "0",
		"nope.service ActiveState": "inactive", "nope.service LoadState": "not-found", "nope.service MainPID": "0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("show (-want +got):\n%s", diff)
	}

	cat, err := uc.Cat(ctx, &corralv1.CatRequest{Names: []string{"foo.service"}})
	if err != nil {
		t.Fatal(err)
	}
	wantText := "# /etc/corral/system/foo.service\n[Service]\nExecStart=/bin/true\n\n# /etc/corral/system/foo.service.d/x.conf\n[Unit]\nDescription=Foo\n"
	if got := cat.GetUnits()[0].GetText(); got != wantText {
		t.Errorf("cat text:\n%q\nwant\n%q", got, wantText)
	}
}

func TestListUnitsFilter(t *testing.T) {
	f := apiservertest.New()
	for _, u := range []apiserver.UnitSummary{
		{Name: "a.service", LoadState: "loaded", ActiveState: "active", SubState: "running"},
		{Name: "b.service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead"},
		{Name: "c.socket", LoadState: "loaded", ActiveState: "active", SubState: "listening"},
		{Name: "d.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed"},
		{Name: "e.service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead", JobID: 7, JobType: "start"},
		{Name: "x.service", LoadState: "not-found", ActiveState: "inactive", SubState: "dead"},
	} {
		f.AddUnit(apiserver.UnitDetail{UnitSummary: u})
	}
	uc, _ := dial(t, apiservertest.Serve(t, f))
	for _, tc := range []struct {
		name string
		req  *corralv1.ListUnitsRequest
		want []string
	}{
		{"default hides inactive", &corralv1.ListUnitsRequest{}, []string{"a.service", "c.socket", "d.service", "e.service"}},
		{"all", &corralv1.ListUnitsRequest{All: true}, []string{"a.service", "b.service", "c.socket", "d.service", "e.service", "x.service"}},
		{"type", &corralv1.ListUnitsRequest{Types: []string{"socket"}}, []string{"c.socket"}},
		{"state inactive", &corralv1.ListUnitsRequest{States: []string{"inactive"}}, []string{"b.service", "e.service", "x.service"}},
		{"state sub", &corralv1.ListUnitsRequest{States: []string{"failed", "listening"}}, []string{"c.socket", "d.service"}},
		{"load state", &corralv1.ListUnitsRequest{States: []string{"not-found"}}, []string{"x.service"}},
		{"pattern", &corralv1.ListUnitsRequest{All: true, Patterns: []string{"[ab]*"}}, []string{"a.service", "b.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := uc.ListUnits(ctxT(t), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range resp.GetUnits() {
				got = append(got, u.GetName())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("units (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatusProcessTree puts real processes (this test and a child) in a
// unit's PID list and expects the child nested under its parent.
func TestStatusProcessTree(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	f := fooFake()
	f.AddUnit(apiserver.UnitDetail{
		UnitSummary: apiserver.UnitSummary{Name: "tree.service", LoadState: "loaded", ActiveState: "active", SubState: "running"},
		MainPID:     os.Getpid(),
		PIDs:        []int{child.Process.Pid, os.Getpid(), 1 << 30}, // the last one does not exist
		Memory:      apiserver.Usage{Valid: true, Current: 4096},
	})
	uc, _ := dial(t, apiservertest.Serve(t, f))
	resp, err := uc.GetUnit(ctxT(t), &corralv1.GetUnitRequest{Name: "tree.service"})
	if err != nil {
		t.Fatal(err)
	}
	u := resp.GetUnit()
	if len(u.GetProcesses()) != 1 {
		t.Fatalf("roots = %v, want only this test process", u.GetProcesses())
	}
	r := u.GetProcesses()[0]
	if r.GetPid() != int64(os.Getpid()) || len(r.GetChildren()) != 1 {
		t.Fatalf("root = %v, want pid %d with one child", r, os.Getpid())
	}
	if c := r.GetChildren()[0]; c.GetPid() != int64(child.Process.Pid) || c.GetCmdline() != "sleep 60" {
		t.Errorf("child = %v, want pid %d 'sleep 60'", c, child.Process.Pid)
	}
	if !u.GetHasMemory() || u.GetMemoryCurrent() != 4096 || u.GetHasTasks() {
		t.Errorf("usage: memory %v/%d tasks %v", u.GetHasMemory(), u.GetMemoryCurrent(), u.GetHasTasks())
	}
	if diff := cmp.Diff([]string{"tree.service"}, u.GetNames()); diff != "" {
		t.Errorf("names: %s", diff)
	}
}

func TestLogsStream(t *testing.T) {
	f := fooFake()
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 5 {
		f.AddLog(apiserver.LogEntry{Time: base.Add(time.Duration(i) * time.Minute), Unit: "foo.service", Stream: "stdout", Msg: fmt.Sprint("line ", i)})
	}
	f.AddLog(apiserver.LogEntry{Time: base, Unit: "other.service", Msg: "other"})
	uc, _ := dial(t, apiservertest.Serve(t, f))

	read := func(req *corralv1.LogsRequest, max int) []string {
		ctx, cancel := context.WithCancel(ctxT(t))
		defer cancel()
		s, err := uc.Logs(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) < max {
			e, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e.GetMessage())
		}
		return got
	}
	if diff := cmp.Diff([]string{"line 3", "line 4"}, read(&corralv1.LogsRequest{Unit: "foo.service", N: 2}, 100)); diff != "" {
		t.Errorf("n=2: %s", diff)
	}
	if diff := cmp.Diff([]string{"line 4"}, read(&corralv1.LogsRequest{Unit: "foo.service", Since: timestamppb.New(base.Add(4 * time.Minute))}, 100)); diff != "" {
		t.Errorf("since: %s", diff)
	}
	// follow: the stream stays open after the backlog; cancelling ends it.
	if diff := cmp.Diff([]string{"line 0", "line 1", "line 2", "line 3", "line 4"}, read(&corralv1.LogsRequest{Unit: "foo.service", Follow: true}, 5)); diff != "" {
		t.Errorf("follow: %s", diff)
	}
}

func TestListenSocketReuse(t *testing.T) {
	path := apiserver.SocketPath(t.TempDir())
	l, err := apiserver.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apiserver.Listen(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Listen on a live socket: %v, want 'in use'", err)
	}
	l.Close()
	// A stale socket file (listener gone, file left behind) is replaced.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l2, err := apiserver.Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("socket dir mode: %v %v, want 0755", fi.Mode(), err)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	f := fooFake()
	f.AddLog(apiserver.LogEntry{Unit: "foo.service", Msg: "x"})
	root := t.TempDir()
	l, err := apiserver.Listen(apiserver.SocketPath(root))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- apiserver.New(f, apiserver.Options{}).Serve(ctx, l) }()
	uc, _ := dial(t, root)
	// A follow stream in flight must not keep Serve from returning.
	s, err := uc.Logs(ctxT(t), &corralv1.LogsRequest{Unit: "foo.service", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := os.Stat(apiserver.SocketPath(root)); !os.IsNotExist(err) {
		t.Errorf("socket left behind after Serve returned: %v", err)
	}
}
