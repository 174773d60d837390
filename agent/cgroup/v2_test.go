package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"corral.io/corral/agent/unit"
)

// fakeV2 is a v2 Manager over a plain directory tree, with a fake kernel
// that does what cgroupfs does on mkdir, write and rmdir.
func fakeV2(t *testing.T, rootControllers string) (*v2, string) {
	t.Helper()
	root := t.TempDir()
	put(t, filepath.Join(root, "cgroup.controllers"), rootControllers)
	put(t, filepath.Join(root, "cgroup.subtree_control"), "")
	fs := fsOps{
		mkdir: func(dir string) error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			// A child offers what its parent enabled for its subtree.
			ctl, _ := os.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"))
			for f, v := range map[string]string{
				"cgroup.controllers": string(ctl), "cgroup.subtree_control": "",
				"cgroup.procs": "", "cgroup.kill": "", "cpu.stat": "usage_usec 0\n",
			} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
					return err
				}
			}
			return nil
		},
		write: func(file, val string) error {
			if filepath.Base(file) == "cgroup.subtree_control" {
				cur, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				set := strings.Fields(string(cur))
				c := strings.TrimPrefix(val, "+")
				ctl, _ := os.ReadFile(filepath.Join(filepath.Dir(file), "cgroup.controllers"))
				if !slices.Contains(strings.Fields(string(ctl)), c) {
					return syscall.ENOENT
				}
				if !slices.Contains(set, c) {
					set = append(set, c)
				}
				val = strings.Join(set, " ")
			}
			return os.WriteFile(file, []byte(val), 0o644)
		},
		rmdir: func(dir string) error {
			if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(strings.TrimSpace(string(b))) > 0 {
				return &os.PathError{Op: "rmdir", Path: dir, Err: syscall.EBUSY}
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.IsDir() {
					return &os.PathError{Op: "rmdir", Path: dir, Err: syscall.EBUSY}
				}
			}
			return os.RemoveAll(dir)
		},
	}
	return &v2{root: root, base: "corral", fs: fs}, root
}

func put(t *testing.T, file, val string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(val), 0o644); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestV2CreateEnablesControllers(t *testing.T) {
	m, root := fakeV2(t, "cpu io memory pids hugetlb")
	if err := m.Create("system.slice/foo.service"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, root + "/corral", root + "/corral/system.slice"} {
		if got := get(t, dir+"/cgroup.subtree_control"); got != "cpu io memory pids" {
			t.Errorf("%s subtree_control = %q, want cpu io memory pids", dir, got)
		}
	}
	leaf := m.Path("memory", "system.slice/foo.service")
	if leaf != root+"/corral/system.slice/foo.service" {
		t.Fatalf("Path = %s", leaf)
	}
	if got := get(t, leaf+"/cgroup.controllers"); got != "cpu io memory pids" {
		t.Errorf("leaf controllers %q", got)
	}
	if got := get(t, leaf+"/cgroup.subtree_control"); got != "" {
		t.Errorf("leaf must not enable controllers (no internal processes): %q", got)
	}
	// Idempotent.
	if err := m.Create("system.slice/foo.service"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{leaf + "/cgroup.procs"}, m.ProcsFiles("system.slice/foo.service")); diff != "" {
		t.Error(diff)
	}
	if m.Version() != 2 {
		t.Error("version")
	}
}

func TestV2Apply(t *testing.T) {
	tests := []struct {
		name string
		r    unit.Resources
		want map[string]string
	}{
		{"defaults reset limits", unit.Resources{}, map[string]string{
			"cpu.max": "max 100000", "cpu.weight": "100", "memory.max": "max", "memory.high": "max",
			"memory.low": "0", "memory.min": "0", "pids.max": "max",
		}},
		{"limits", unit.Resources{
			CPUQuotaPerSec: 500 * time.Millisecond, CPUWeight: 250, MemoryMax: 64 << 20, MemoryHigh: 48 << 20,
			MemoryLow: 1 << 20, TasksMax: 10, IOWeight: 200,
		}, map[string]string{
			"cpu.max": "50000 100000", "cpu.weight": "250", "memory.max": "67108864", "memory.high": "50331648",
			"memory.low": "1048576", "pids.max": "10", "io.weight": "default 200",
		}},
		{"quota period and shares converted", unit.Resources{
			CPUQuotaPerSec: 2 * time.Second, CPUQuotaPeriod: 50 * time.Millisecond, CPUShares: 2048,
		}, map[string]string{"cpu.max": "100000 50000", "cpu.weight": "200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := fakeV2(t, "cpu io memory pids")
			if err := m.Create("a.service"); err != nil {
				t.Fatal(err)
			}
			if err := m.Apply("a.service", tt.r); err != nil {
				t.Fatal(err)
			}
			dir := m.Path("", "a.service")
			for f, want := range tt.want {
				if got := get(t, filepath.Join(dir, f)); got != want {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
		})
	}
}

func TestV2ApplySkipsUnavailableControllers(t *testing.T) {
	m, _ := fakeV2(t, "pids")
	if err := m.Create("a.service"); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply("a.service", unit.Resources{MemoryMax: 1 << 20, TasksMax: 5}); err != nil {
		t.Fatal(err)
	}
	dir := m.Path("", "a.service")
	if _, err := os.Stat(filepath.Join(dir, "memory.max")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("memory.max written without the memory controller: %v", err)
	}
	if got := get(t, filepath.Join(dir, "pids.max")); got != "5" {
		t.Errorf("pids.max = %q", got)
	}
}

func TestV2StatsAndPids(t *testing.T) {
	m, _ := fakeV2(t, "cpu memory pids")
	if err := m.Create("a.service/sub"); err != nil {
		t.Fatal(err)
	}
	dir := m.Path("", "a.service")
	put(t, dir+"/cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\n")
	put(t, dir+"/memory.current", "1000\n")
	put(t, dir+"/memory.stat", "anon 600\nfile 400\ninactive_file 300\n")
	put(t, dir+"/memory.max", "max\n")
	put(t, dir+"/pids.current", "3\n")
	put(t, dir+"/cgroup.procs", "10\n12\n")
	put(t, dir+"/sub/cgroup.procs", "11\n")
	s, err := m.Stats("a.service")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Stats{CPUUsageNS: 5000, MemoryUsage: 1000, MemoryWorkingSet: 700, Pids: 3}, s); diff != "" {
		t.Error(diff)
	}
	put(t, dir+"/memory.max", "4096\n")
	if s, _ := m.Stats("a.service"); s.MemoryLimit != 4096 {
		t.Errorf("limit %d", s.MemoryLimit)
	}
	pids, err := m.Pids("a.service")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{10, 11, 12}, pids); diff != "" {
		t.Error(diff)
	}
}

func TestV2Kill(t *testing.T) {
	m, _ := fakeV2(t, "pids")
	if err := m.Create("a.service"); err != nil {
		t.Fatal(err)
	}
	dir := m.Path("", "a.service")
	// SIGKILL goes through cgroup.kill.
	if err := m.Kill("a.service", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := get(t, dir+"/cgroup.kill"); got != "1" {
		t.Errorf("cgroup.kill = %q, want 1", got)
	}
	// Other signals go to each listed process: a real one we started.
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	put(t, dir+"/cgroup.procs", strconv.Itoa(cmd.Process.Pid))
	if err := m.Kill("a.service", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("sleep ended with %v, want SIGTERM", err)
	}
}

func TestV2Remove(t *testing.T) {
	m, root := fakeV2(t, "pids")
	if err := m.Create("a.slice/b.service"); err != nil {
		t.Fatal(err)
	}
	put(t, m.Path("", "a.slice/b.service")+"/cgroup.procs", "4242\n")
	err := m.Remove("a.slice")
	if err == nil || !strings.Contains(err.Error(), "still populated (pids [4242])") || !strings.Contains(err.Error(), "b.service") {
		t.Fatalf("Remove of populated group: %v", err)
	}
	put(t, m.Path("", "a.slice/b.service")+"/cgroup.procs", "")
	if err := m.Remove("a.slice"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/corral/a.slice"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a.slice still there: %v", err)
	}
	if err := m.Remove("a.slice"); err != nil {
		t.Fatalf("Remove is not idempotent: %v", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		v1   map[string]string
		v2   string
	}{
		{"hybrid", `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:31 / /sys/fs/cgroup/net_cls rw,relatime - cgroup cgroup rw,net_cls
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`, map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
			"memory": "/sys/fs/cgroup/memory", "systemd": "/sys/fs/cgroup/systemd"}, "/sys/fs/cgroup/unified"},
		{"unified", `26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`, map[string]string{}, "/sys/fs/cgroup"},
		{"none", "22 1 8:1 / / rw - ext4 /dev/vda rw\n", map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v1, v2, err := ParseMountinfo(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.v1, v1); diff != "" {
				t.Error(diff)
			}
			if v2 != tt.v2 {
				t.Errorf("v2 = %q, want %q", v2, tt.v2)
			}
		})
	}
}

func TestWeightConversions(t *testing.T) {
	for _, tt := range []struct{ shares, weight uint64 }{{1024, 100}, {2048, 200}, {2, 1}, {262144, 10000}} {
		if got := cpuSharesToWeight(tt.shares); got != tt.weight {
			t.Errorf("cpuSharesToWeight(%d) = %d, want %d", tt.shares, got, tt.weight)
		}
	}
	for _, tt := range []struct{ weight, shares uint64 }{{100, 1024}, {200, 2048}, {1, 10}, {10000, 102400}} {
		if got := cpuWeightToShares(tt.weight); got != tt.shares {
			t.Errorf("cpuWeightToShares(%d) = %d, want %d", tt.weight, got, tt.shares)
		}
	}
	if got := ioWeightToBlkio(100); got != 500 {
		t.Errorf("ioWeightToBlkio(100) = %d", got)
	}
}
