package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"corral.io/corral/agent/unit"
)

// v2 is the unified layout: one tree, controllers enabled per level through
// cgroup.subtree_control.
type v2 struct {
	root string // mount point, e.g. /sys/fs/cgroup
	base string
	fs   fsOps
}

// fsOps are the operations whose effect cgroupfs defines (a new directory
// comes with its interface files; rmdir of a populated group is EBUSY), so
// that tests can stand in a fake kernel over a plain directory tree.
type fsOps struct {
	mkdir func(dir string) error
	write func(file, val string) error
	rmdir func(dir string) error
}

var realFS = fsOps{
	mkdir: func(dir string) error { return os.Mkdir(dir, 0o755) },
	write: write,
	rmdir: rmdir,
}

// NewV2 returns a v2 Manager for the unified hierarchy mounted at root,
// creating everything below base.
func NewV2(root, base string) Manager {
	return &v2{root: root, base: clean(base), fs: realFS}
}

// wanted are the controllers Corral enables for its groups, when the kernel
// offers them.
var wanted = []string{"cpu", "cpuset", "io", "memory", "pids"}

func (m *v2) Version() int { return 2 }

// Path ignores the controller: v2 has one tree.
func (m *v2) Path(_ string, path string) string {
	return filepath.Join(m.root, m.base, clean(path))
}

func (m *v2) available(dir string) []string {
	s, _ := readString(filepath.Join(dir, "cgroup.controllers"))
	return strings.Fields(s)
}

// Create makes the group and every missing parent, enabling the wanted
// controllers in each parent's subtree_control on the way down: a
// controller is usable in a group only if every ancestor delegated it.
// Processes live only in leaves, as the no-internal-processes rule requires.
func (m *v2) Create(path string) error {
	dir := m.root
	for _, part := range strings.Split(filepath.Join(m.base, clean(path)), "/") {
		if part == "" {
			continue
		}
		avail := m.available(dir)
		enabled, _ := readString(filepath.Join(dir, "cgroup.subtree_control"))
		for _, c := range wanted {
			if !slices.Contains(avail, c) || slices.Contains(strings.Fields(enabled), c) {
				continue
			}
			if err := m.fs.write(filepath.Join(dir, "cgroup.subtree_control"), "+"+c); err != nil {
				return fmt.Errorf("create cgroup %s: %w", filepath.Join(dir, part), err)
			}
		}
		dir = filepath.Join(dir, part)
		if err := m.fs.mkdir(dir); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
	}
	return nil
}

func (m *v2) Apply(path string, r unit.Resources) error {
	dir := m.Path("", path)
	avail := m.available(dir)
	var errs []error
	set := func(controller, file, val string) {
		if !slices.Contains(avail, controller) {
			return
		}
		if err := m.fs.write(filepath.Join(dir, file), val); err != nil {
			errs = append(errs, err)
		}
	}
	q, period := quota(r)
	qs := "max"
	if q > 0 {
		qs = strconv.FormatInt(q, 10)
	}
	set("cpu", "cpu.max", qs+" "+strconv.FormatUint(period, 10))
	weight := uint64(100)
	switch {
	case r.CPUWeight > 0:
		weight = clamp(r.CPUWeight, 1, 10000)
	case r.CPUShares > 0:
		weight = cpuSharesToWeight(r.CPUShares)
	}
	set("cpu", "cpu.weight", strconv.FormatUint(weight, 10))
	limit := func(v uint64) string { return limitValue(v, "max") }
	set("memory", "memory.max", limit(r.MemoryMax))
	set("memory", "memory.high", limit(r.MemoryHigh))
	set("memory", "memory.low", strconv.FormatUint(r.MemoryLow, 10))
	set("memory", "memory.min", strconv.FormatUint(r.MemoryMin, 10))
	if r.MemorySwapMax > 0 {
		set("memory", "memory.swap.max", limit(r.MemorySwapMax))
	}
	set("pids", "pids.max", limit(r.TasksMax))
	if r.IOWeight > 0 {
		set("io", "io.weight", "default "+strconv.FormatUint(clamp(r.IOWeight, 1, 10000), 10))
	}
	if r.AllowedCPUs != "" {
		set("cpuset", "cpuset.cpus", r.AllowedCPUs)
	}
	if r.AllowedMemoryNodes != "" {
		set("cpuset", "cpuset.mems", r.AllowedMemoryNodes)
	}
	return errors.Join(errs...)
}

func (m *v2) ProcsFiles(path string) []string {
	return []string{filepath.Join(m.Path("", path), "cgroup.procs")}
}

func (m *v2) Enter(path string, pid int) error {
	return m.fs.write(m.ProcsFiles(path)[0], strconv.Itoa(pid))
}

func (m *v2) Pids(path string) ([]int, error) {
	set := map[int]bool{}
	if err := readPids(m.Path("", path), set); err != nil {
		return nil, fmt.Errorf("pids of cgroup %s: %w", m.Path("", path), err)
	}
	return sortedPids(set), nil
}

// Kill uses cgroup.kill for SIGKILL where the kernel has it (5.14+): it
// kills the whole subtree atomically, forks included.
func (m *v2) Kill(path string, sig syscall.Signal) error {
	dir := m.Path("", path)
	if sig == syscall.SIGKILL {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
			return m.fs.write(filepath.Join(dir, "cgroup.kill"), "1")
		}
	}
	return killLoop(func() ([]int, error) { return m.Pids(path) }, sig)
}

func (m *v2) Remove(path string) error {
	return removeTree(m.Path("", path), m.fs.rmdir, time.Now().Add(removeWait))
}

func (m *v2) Stats(path string) (Stats, error) {
	dir := m.Path("", path)
	avail := m.available(dir)
	var s Stats
	fail := func(err error) (Stats, error) { return s, fmt.Errorf("stats of cgroup %s: %w", dir, err) }
	// cpu.stat is there even without the cpu controller.
	cpu, err := readKV(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return fail(err)
	}
	s.CPUUsageNS = cpu["usage_usec"] * 1000
	if slices.Contains(avail, "memory") {
		if s.MemoryUsage, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
			return fail(err)
		}
		st, err := readKV(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return fail(err)
		}
		s.MemoryWorkingSet = s.MemoryUsage - min(st["inactive_file"], s.MemoryUsage)
		if v, err := readString(filepath.Join(dir, "memory.max")); err != nil {
			return fail(err)
		} else if v != "max" {
			if s.MemoryLimit, err = strconv.ParseUint(v, 10, 64); err != nil {
				return fail(err)
			}
		}
	}
	if slices.Contains(avail, "pids") {
		if s.Pids, err = readUint(filepath.Join(dir, "pids.current")); err != nil {
			return fail(err)
		}
	}
	return s, nil
}
