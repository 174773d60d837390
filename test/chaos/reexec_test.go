//go:build integration

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/test/node"
)

// retriable is what a CRI client (kubelet) retries: the connection was
// reset or is being re-established. Anything else is a failed call.
func retriable(err error) bool {
	if status.Code(err) == codes.Unavailable {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// criLoad calls Version, ListContainers and ContainerStatus(ctr) in a loop
// on one long-lived connection until stop is closed, retrying only
// retriable errors (each call for at most 30 s). It returns the calls that
// succeeded, the retries, and the calls that failed for good.
func criLoad(t *testing.T, sock, ctr string, stop <-chan struct{}) (ok, retries, failed *atomic.Int64, done <-chan struct{}) {
	ok, retries, failed = new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := runtimeapi.NewRuntimeServiceClient(conn)
	calls := []func(context.Context) error{
		func(ctx context.Context) error { _, err := c.Version(ctx, &runtimeapi.VersionRequest{}); return err },
		func(ctx context.Context) error {
			r, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			if err == nil && len(r.Containers) == 0 {
				err = fmt.Errorf("ListContainers: no container")
			}
			return err
		},
		func(ctx context.Context) error {
			r, err := c.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr})
			if err == nil && r.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				err = fmt.Errorf("ContainerStatus: %v", r.Status.State)
			}
			return err
		},
	}
	d := make(chan struct{})
	go func() {
		defer close(d)
		defer conn.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := calls[i%len(calls)](ctx)
				cancel()
				if err == nil {
					ok.Add(1)
					break
				}
				if !retriable(err) || time.Now().After(deadline) {
					failed.Add(1)
					t.Errorf("CRI call %d failed: %v", i%len(calls), err)
					break
				}
				retries.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	return ok, retries, failed, d
}

// TestDaemonReexecUnderCRILoad: services and a native pod with a running
// container; 100 `corralctl daemon-reexec` in a row while a CRI client
// calls Version/ListContainers/ContainerStatus without pause. No call may
// fail beyond retried connection resets, the core keeps its PID (exec),
// every main PID and the container's PID stay, an exit during the loop is
// reported with its real status (reaped by the re-executed core), and one
// `corralctl upgrade` to a freshly built agent binary does the same.
func TestDaemonReexecUnderCRILoad(t *testing.T) {
	cb := crictlPath(t)
	units := map[string]string{
		"a.service": "[Service]\nExecStart=/bin/sleep 200001\n",
		"late.service": "[Service]\nExecStart=/bin/sh -c 'trap \"exit 3\" USR1; while :; do sleep 0.05; done' reexec-late-marker\n" +
			"Restart=on-failure\nRestartSec=100ms\n",
		"rx.target": "[Unit]\nWants=a.service late.service\nAfter=a.service late.service\n",
	}
	n := node.Start(t, bin, node.Options{Units: units, Target: "rx.target"})
	n.Eventually("units active", func() error {
		for _, u := range []string{"a.service", "late.service", "rx.target"} {
			if s := n.State(u); s != "active" {
				return fmt.Errorf("%s is %s", u, s)
			}
		}
		return nil
	})
	a, late := mainPID(t, n, "a.service"), mainPID(t, n, "late.service")

	dir := t.TempDir()
	pod := filepath.Join(dir, "pod.json")
	ctr := filepath.Join(dir, "ctr.json")
	os.WriteFile(pod, []byte(fmt.Sprintf(`{"metadata":{"name":"rx","namespace":"chaos","uid":"rx-uid","attempt":0},
"log_directory":%q,"linux":{"security_context":{"namespace_options":{"network":2}}}}`, filepath.Join(dir, "logs"))), 0o644)
	cmd, _ := json.Marshal([]string{"/bin/sh", "-c", "while :; do sleep 0.2; done", "reexec-ctr-marker"})
	os.WriteFile(ctr, []byte(fmt.Sprintf(`{"metadata":{"name":"sleeper"},"image":{"image":"localhost/corral/host:latest"},"command":%s,"log_path":"s.log"}`, cmd)), 0o644)
	must := func(args ...string) string {
		t.Helper()
		out, err := crictl(t, cb, n, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	podID := must("runp", pod)
	ctrID := must("create", podID, ctr, pod)
	must("start", ctrID)
	t.Cleanup(func() { crictl(t, cb, n, "rmp", "-f", podID) })
	cps := procs("reexec-ctr-marker")
	if len(cps) != 1 {
		t.Fatalf("container processes %v", cps)
	}
	core := agentPID(n)

	stop := make(chan struct{})
	ok, retries, failed, done := criLoad(t, filepath.Join(n.Root, "run", "corral", "cri.sock"), ctrID, stop)
	const rounds = 100
	var lateOnce sync.Once
	for i := range rounds {
		before := ok.Load()
		if out, err := n.Ctl("daemon-reexec"); err != nil {
			t.Fatalf("daemon-reexec %d: %v\n%s", i+1, err, out)
		}
		if p := agentPID(n); p != core {
			t.Fatalf("after daemon-reexec %d the core is PID %d, was %d (replaced, not re-executed)", i+1, p, core)
		}
		if i == rounds/2 {
			// An exit right after a re-exec: the core reaps its own
			// child and reports the real status (not "unknown").
			lateOnce.Do(func() { syscall.Kill(late, syscall.SIGUSR1) })
		}
		n.Eventually("CRI calls go on", func() error {
			if ok.Load() < before+3 {
				return fmt.Errorf("%d calls since the re-exec", ok.Load()-before)
			}
			return nil
		})
	}

	// upgrade to a freshly built copy of the agent.
	newBin := filepath.Join(n.Bin, "corral-agent.upgrade")
	if out, err := exec.Command("go", "build", "-o", newBin, "corral.io/corral/cmd/corral-agent").CombinedOutput(); err != nil {
		t.Fatalf("build the upgrade: %v\n%s", err, out)
	}
	defer os.Remove(newBin)
	if out, err := n.Ctl("upgrade", "corral-agent.upgrade"); err == nil {
		t.Errorf("upgrade to a relative path was accepted: %s", out)
	}
	if out, err := n.Ctl("upgrade", newBin); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", core)); exe != newBin {
		t.Errorf("after upgrade the core runs %q, want %q", exe, newBin)
	}
	before := ok.Load()
	n.Eventually("CRI calls go on after the upgrade", func() error {
		if ok.Load() < before+3 {
			return fmt.Errorf("%d calls since the upgrade", ok.Load()-before)
		}
		return nil
	})
	close(stop)
	<-done

	if f := failed.Load(); f != 0 {
		t.Errorf("%d CRI calls failed beyond retries", f)
	}
	if got := mainPID(t, n, "a.service"); got != a {
		t.Errorf("a.service main PID %d, want %d", got, a)
	}
	if p := procs("200001"); len(p) != 1 {
		t.Errorf("a.service processes %v, want 1", p)
	}
	if p := procs("reexec-ctr-marker"); len(p) != 1 || p[0] != cps[0] {
		t.Errorf("container processes %v, want [%d]", p, cps[0])
	}
	// ExecMainStatus belongs to the current main process (reset when the
	// restart spawns a new one, as in systemd), so the exit status is read
	// from the unit's log, where the core recorded it.
	n.Eventually("late.service restarted once after its exit with status 3", func() error {
		if r, s := n.Prop("late.service", "NRestarts"), n.State("late.service"); r != "1" || s != "active" {
			return fmt.Errorf("NRestarts=%s state=%s", r, s)
		}
		if out, _ := n.Ctl("logs", "-u", "late.service"); !strings.Contains(out, "status=3/") {
			return fmt.Errorf("no exit with status 3 in the log:\n%s", out)
		}
		return nil
	})
	if out := must("ps", "-q", "--state", "Running", "--id", ctrID); out != ctrID {
		t.Errorf("crictl ps --state Running = %q", out)
	}
	if out := n.Must("is-active", "a.service"); strings.TrimSpace(out) != "active" {
		t.Errorf("corralctl is-active a.service = %q", out)
	}
	fmt.Printf("reexec: rounds=%d+1 upgrade cri_calls=%d retried=%d failed=%d core_pid=%d\n", rounds, ok.Load(), retries.Load(), failed.Load(), core)
}
