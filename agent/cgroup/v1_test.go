package cgroup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/unit"
)

func TestMain(m *testing.M) {
	proc.MaybeTrampoline()
	os.Exit(m.Run())
}

var nbase atomic.Int64

// realV1 is a Manager on this machine's real v1 hierarchies under a base
// that no other test or agent uses; everything is killed and removed at the
// end.
func realV1(t *testing.T) Manager {
	t.Helper()
	base := fmt.Sprintf("corral-test-%d-%d", os.Getpid(), nbase.Add(1))
	m, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != 1 {
		t.Fatalf("this machine has cgroup v1 hierarchies, got version %d", m.Version())
	}
	t.Cleanup(func() {
		m.Kill("", syscall.SIGKILL)
		if err := m.Remove(""); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return m
}

// waitStatus waits for cmd to exit (it is our child) and returns its status.
func waitStatus(cmd *exec.Cmd) syscall.WaitStatus {
	cmd.Wait()
	return cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func TestV1Create(t *testing.T) {
	m := realV1(t)
	if err := m.Create("system.slice/a.service"); err != nil {
		t.Fatal(err)
	}
	for _, c := range Controllers {
		if _, err := os.Stat(m.Path(c, "system.slice/a.service")); err != nil {
			t.Errorf("controller %s: %v", c, err)
		}
	}
	cpus := get(t, filepath.Join(m.Path("cpuset", "system.slice/a.service"), "cpuset.cpus"))
	if want := get(t, "/sys/fs/cgroup/cpuset/cpuset.cpus"); cpus != want {
		t.Errorf("cpuset.cpus = %q, want the parent's %q", cpus, want)
	}
	if got := len(m.ProcsFiles("x")); got != len(Controllers) {
		t.Errorf("%d procs files, want one per hierarchy (%d)", got, len(Controllers))
	}
	if p := m.Path("", "x"); p != "/sys/fs/cgroup/systemd/"+filepath.Base(filepath.Dir(p))+"/x" {
		t.Errorf("Path(\"\") = %s, want the name=systemd hierarchy", p)
	}
}

func TestV1Apply(t *testing.T) {
	m := realV1(t)
	if err := m.Create("a.service"); err != nil {
		t.Fatal(err)
	}
	read := func(c, f string) string { return get(t, filepath.Join(m.Path(c, "a.service"), f)) }
	r := unit.Resources{CPUQuotaPerSec: 500 * time.Millisecond, CPUWeight: 200, MemoryMax: 64 << 20, TasksMax: 10}
	if err := m.Apply("a.service", r); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ctl, file, want string }{
		{"cpu", "cpu.cfs_quota_us", "50000"}, {"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.shares", "2048"}, {"memory", "memory.limit_in_bytes", "67108864"},
		{"pids", "pids.max", "10"},
	} {
		if got := read(c.ctl, c.file); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	// Dropping the settings (daemon-reload) removes the limits.
	if err := m.Apply("a.service", unit.Resources{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ctl, file, want string }{
		{"cpu", "cpu.cfs_quota_us", "-1"}, {"cpu", "cpu.shares", "1024"}, {"pids", "pids.max", "max"},
	} {
		if got := read(c.ctl, c.file); got != c.want {
			t.Errorf("after reset %s = %q, want %q", c.file, got, c.want)
		}
	}
	// "infinity" in a unit file (math.MaxUint64) is no limit, not a number
	// the kernel would reject.
	if err := m.Apply("a.service", unit.Resources{MemoryMax: math.MaxUint64, TasksMax: math.MaxUint64}); err != nil {
		t.Fatalf("Apply with infinity: %v", err)
	}
	if got := read("pids", "pids.max"); got != "max" {
		t.Errorf("TasksMax=infinity: pids.max = %q, want max", got)
	}
	if s, err := m.Stats("a.service"); err != nil || s.MemoryLimit != 0 {
		t.Errorf("after reset memory limit %d (%v), want unlimited", s.MemoryLimit, err)
	}
}

// TestV1SpawnIntoGroup starts a process through proc with the group's
// cgroup.procs files, as the service manager does, and checks that the
// process and its children are found, counted, killed and cleaned up.
func TestV1SpawnIntoGroup(t *testing.T) {
	m := realV1(t)
	const g = "system.slice/spawn.service"
	if err := m.Create(g); err != nil {
		t.Fatal(err)
	}
	pid, err := (&proc.Spawner{}).Start(context.Background(), &proc.Spec{
		Path: "/bin/sh", Argv: []string{"sh", "-c", "sleep 100 & sleep 100 & wait"},
		CgroupProcs: m.ProcsFiles(g), Setsid: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		done <- ws
	}()
	var pids []int
	deadline := time.Now().Add(30 * time.Second)
	for len(pids) < 3 && time.Now().Before(deadline) {
		pids, err = m.Pids(g)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(pids) != 3 || pids[0] != pid && pids[1] != pid && pids[2] != pid {
		t.Fatalf("pids %v, want sh (%d) and two sleeps", pids, pid)
	}
	for _, c := range []string{"cpu", "memory", "pids", "systemd"} {
		procs := get(t, filepath.Join(m.Path(c, g), "cgroup.procs"))
		if !strings.Contains(procs, strconv.Itoa(pid)) {
			t.Errorf("pid %d not in %s hierarchy: %q", pid, c, procs)
		}
	}
	s, err := m.Stats(g)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pids != 3 || s.CPUUsageNS == 0 || s.MemoryUsage == 0 || s.MemoryWorkingSet > s.MemoryUsage {
		t.Errorf("stats %+v", s)
	}
	// A parent slice sees them too (recursive).
	if all, _ := m.Pids("system.slice"); len(all) != 3 {
		t.Errorf("slice pids %v", all)
	}
	if err := m.Kill("system.slice", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case ws := <-done:
		if ws.Signal() != syscall.SIGKILL {
			t.Errorf("sh ended with %v", ws)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sh not killed")
	}
	// The sleeps are children of sh, so init (or a subreaper) reaps them.
	if err := m.Remove("system.slice"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.Path("memory", "system.slice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("slice still exists: %v", err)
	}
}

func TestV1TasksMaxEnforced(t *testing.T) {
	m := realV1(t)
	if err := m.Create("tm"); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply("tm", unit.Resources{TasksMax: 1}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "read x; /bin/true")
	r, w, _ := os.Pipe()
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := m.Enter("tm", cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	w.WriteString("go\n")
	w.Close()
	if ws := waitStatus(cmd); ws.ExitStatus() == 0 {
		t.Fatal("sh could fork /bin/true with TasksMax=1")
	}
}

func TestV1KillForkingGroup(t *testing.T) {
	m := realV1(t)
	if err := m.Create("forker"); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply("forker", unit.Resources{TasksMax: 64}); err != nil {
		t.Fatal(err)
	}
	// A shell that keeps forking short-lived and long-lived children.
	cmd := exec.Command("/bin/sh", "-c", "while :; do sleep 100 & /bin/true; done")
	r, w, _ := os.Pipe()
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	if err := m.Enter("forker", cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let it fork some
	if err := m.Kill("forker", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStatus(cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids, err := m.Pids("forker")
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes survived Kill: %v", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := get(t, filepath.Join(m.Path("freezer", "forker"), "freezer.state")); st != "THAWED" {
		t.Errorf("group left %s", st)
	}
}

func TestV1RemovePopulated(t *testing.T) {
	m := realV1(t)
	if err := m.Create("busy/leaf"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer waitStatus(cmd)
	defer cmd.Process.Kill()
	if err := m.Enter("busy/leaf", cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	err := m.Remove("busy")
	want := fmt.Sprintf("still populated (pids [%d])", cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "busy/leaf") {
		t.Fatalf("Remove = %v, want an error naming busy/leaf and %q", err, want)
	}
	cmd.Process.Kill()
	waitStatus(cmd)
	if err := m.Remove("busy"); err != nil {
		t.Fatal(err)
	}
}
