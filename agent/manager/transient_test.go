package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/cgroup"
	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/service"
)

func TestMain(m *testing.M) {
	proc.MaybeTrampoline()
	os.Exit(m.Run())
}

// newRunning starts a manager on a temp root with a unique cgroup base and
// stops it at the end of the test.
func newRunning(t *testing.T) *Manager {
	t.Helper()
	base := fmt.Sprintf("corral-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	m, err := New(Config{Root: t.TempDir(), CgroupBase: base, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, "") }()
	<-m.ready
	t.Cleanup(func() {
		cancel()
		<-done
		m.cg.Remove("")
	})
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTransientLifecycle(t *testing.T) {
	m := newRunning(t)
	root, err := cgroup.New("")
	if err != nil {
		t.Fatal(err)
	}
	podCg := fmt.Sprintf("corral-test-%d-pod", os.Getpid())
	t.Cleanup(func() { root.Remove(podCg) })
	logPath := filepath.Join(t.TempDir(), "c", "0.log")
	mirror, err := logs.OpenCRIFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer mirror.Close()

	var mu sync.Mutex
	var seen []string
	u := m.ParseTransient("cri-test1.service", "[Unit]\nDescription=test container\nDefaultDependencies=no\n[Service]\nType=exec\nExecStart=/bin/true\n")
	u.Service.ExecStart[0].Path = "/bin/sh"
	u.Service.ExecStart[0].Args = []string{"sh", "-c", "echo hello $FOO; exec sleep 300"}
	u.Service.Environment = []string{"FOO=bar"}
	adjusted := false
	opts := TransientOptions{
		Cgroups: root, Cgroup: podCg + "/c1", LogMirror: mirror,
		Adjust: func(sp *proc.Spec, kind string, main bool) { adjusted = true },
		OnChange: func(_, st service.Status) {
			mu.Lock()
			seen = append(seen, st.ActiveState)
			mu.Unlock()
		},
	}
	ctx := context.Background()
	if err := m.StartTransient(ctx, u, opts); err != nil {
		t.Fatalf("StartTransient: %v", err)
	}
	if !adjusted {
		t.Error("Adjust was not called for the spawn")
	}
	st, ok := m.UnitState("cri-test1.service")
	if !ok || st.ActiveState != "active" || st.MainPID == 0 {
		t.Fatalf("UnitState = %+v, %v; want active with a main PID", st, ok)
	}
	procs, err := os.ReadFile(filepath.Join(root.Path("pids", podCg+"/c1"), "cgroup.procs"))
	if err != nil || !strings.Contains(string(procs), fmt.Sprint(st.MainPID)) {
		t.Errorf("main PID %d not in the pod's cgroup %s/c1: %q, %v", st.MainPID, podCg, procs, err)
	}
	units, _ := m.ListUnits(ctx)
	if !slices.ContainsFunc(units, func(s apiserver.UnitSummary) bool { return s.Name == "cri-test1.service" && s.ActiveState == "active" }) {
		t.Errorf("ListUnits does not show the transient unit active: %+v", units)
	}
	waitFor(t, "the CRI log line", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), " stdout F hello bar\n")
	})
	if err := m.AddTransient(m.ParseTransient("cri-test1.service", "[Service]\nExecStart=/bin/true\n"), TransientOptions{}); !errors.Is(err, ErrUnitExists) {
		t.Errorf("AddTransient of a taken name: %v, want ErrUnitExists", err)
	}
	if err := m.RemoveTransient("cri-test1.service"); err == nil {
		t.Error("RemoveTransient of an active unit succeeded")
	}
	// daemon-reload has no file to re-read for a transient unit: it must
	// keep its configuration and state.
	if err := m.DaemonReload(ctx); err != nil {
		t.Fatal(err)
	}
	if st2, ok := m.UnitState("cri-test1.service"); !ok || st2.ActiveState != "active" || st2.MainPID != st.MainPID {
		t.Errorf("after daemon-reload: %+v, %v; want still active with main PID %d", st2, ok, st.MainPID)
	}
	if d, err := m.UnitStatus(ctx, "cri-test1.service"); err != nil || d.LoadState != "loaded" {
		t.Errorf("after daemon-reload: load state %q, %v", d.LoadState, err)
	}

	if err := m.StopUnit(ctx, "cri-test1.service", 5*time.Second); err != nil {
		t.Fatalf("StopUnit: %v", err)
	}
	if st, _ := m.UnitState("cri-test1.service"); st.ActiveState != "inactive" && st.ActiveState != "failed" {
		t.Errorf("after StopUnit: %s", st.ActiveState)
	}
	if err := m.StopUnit(ctx, "cri-test1.service", 0); err != nil {
		t.Errorf("StopUnit of a stopped unit: %v", err)
	}
	if _, err := os.Stat(root.Path("pids", podCg+"/c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container cgroup still there after stop: %v", err)
	}
	if err := m.RemoveTransient("cri-test1.service"); err != nil {
		t.Fatalf("RemoveTransient: %v", err)
	}
	if _, ok := m.UnitState("cri-test1.service"); ok {
		t.Error("UnitState still knows the removed unit")
	}
	if _, ok, _ := m.db.Unit("cri-test1.service"); ok {
		t.Error("state record of the removed unit is still there")
	}
	if err := m.RemoveTransient("cri-test1.service"); err != nil {
		t.Errorf("second RemoveTransient: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(seen, "active") || !slices.Contains(seen, "inactive") {
		t.Errorf("OnChange saw %v, want active and inactive among them", seen)
	}
}

func TestTransientExitStatus(t *testing.T) {
	m := newRunning(t)
	tests := []struct {
		name, script string
		wantState    string
		wantStatus   int
	}{
		{"exit 0", "exit 0", "inactive", 0},
		{"exit 3", "exit 3", "failed", 3},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("cri-exit%d.service", i)
			u := m.ParseTransient(name, "[Unit]\nDefaultDependencies=no\n[Service]\nType=exec\nExecStart=/bin/sh -c true\n")
			u.Service.ExecStart[0].Args = []string{"sh", "-c", tc.script}
			if err := m.StartTransient(context.Background(), u, TransientOptions{}); err != nil {
				t.Fatalf("StartTransient: %v", err)
			}
			var st service.Status
			waitFor(t, "the exit", func() bool { st, _ = m.UnitState(name); return st.ActiveState == tc.wantState })
			if st.ExecMainStatus != tc.wantStatus || st.ExecMainCode != 1 {
				t.Errorf("exit = code %d status %d, want CLD_EXITED status %d", st.ExecMainCode, st.ExecMainStatus, tc.wantStatus)
			}
			if err := m.RemoveTransient(name); err != nil {
				t.Errorf("RemoveTransient: %v", err)
			}
		})
	}
	if err := m.StartUnit(context.Background(), "cri-none.service"); !errors.Is(err, ErrNoUnit) {
		t.Errorf("StartUnit of an unknown unit: %v, want ErrNoUnit", err)
	}
}
