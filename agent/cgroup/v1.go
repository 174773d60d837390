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

// v1 is the legacy layout: one hierarchy per controller (or per group of
// co-mounted controllers), each with its own copy of our tree.
type v1 struct {
	base   string
	mounts map[string]string // controller → mount point
	hier   []string          // distinct mount points, sorted
}

// NewV1 returns a v1 Manager for the given controller → mount point map (as
// ParseMountinfo returns it), creating everything below base.
func NewV1(mounts map[string]string, base string) Manager {
	m := &v1{base: clean(base), mounts: map[string]string{}}
	for c, dir := range mounts {
		m.mounts[c] = dir
		if !slices.Contains(m.hier, dir) {
			m.hier = append(m.hier, dir)
		}
	}
	slices.Sort(m.hier)
	return m
}

func (m *v1) Version() int { return 1 }

// Path returns the group's directory in the controller's hierarchy; ""
// selects the name=systemd hierarchy (membership only), or "" when the
// controller is not mounted.
func (m *v1) Path(controller, path string) string {
	if controller == "" {
		controller = "systemd"
		if _, ok := m.mounts[controller]; !ok {
			controller = "pids"
		}
	}
	mnt, ok := m.mounts[controller]
	if !ok {
		return ""
	}
	return filepath.Join(mnt, m.base, clean(path))
}

func (m *v1) dirs(path string) []string {
	d := make([]string, len(m.hier))
	for i, h := range m.hier {
		d[i] = filepath.Join(h, m.base, clean(path))
	}
	return d
}

func (m *v1) Create(path string) error {
	for _, h := range m.hier {
		rel := filepath.Join(m.base, clean(path))
		if h == m.mounts["cpuset"] {
			// A new cpuset group starts with no CPUs and no memory
			// nodes, and no task can join it: copy them down level by
			// level.
			dir := h
			for _, part := range strings.Split(rel, "/") {
				parent := dir
				dir = filepath.Join(dir, part)
				if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
					return fmt.Errorf("create cgroup %s: %w", dir, err)
				}
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if cur, _ := readString(filepath.Join(dir, f)); cur != "" {
						continue
					}
					v, err := readString(filepath.Join(parent, f))
					if err != nil {
						return fmt.Errorf("create cgroup %s: %w", dir, err)
					}
					if err := write(filepath.Join(dir, f), v); err != nil {
						return fmt.Errorf("create cgroup %s: %w", dir, err)
					}
				}
			}
			continue
		}
		dir := filepath.Join(h, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
	}
	return nil
}

func (m *v1) Apply(path string, r unit.Resources) error {
	var errs []error
	set := func(controller, file, val string) {
		if _, ok := m.mounts[controller]; !ok {
			return
		}
		if err := write(filepath.Join(m.Path(controller, path), file), val); err != nil {
			errs = append(errs, err)
		}
	}
	q, period := quota(r)
	// The period first: the kernel checks the quota against it.
	set("cpu", "cpu.cfs_period_us", strconv.FormatUint(period, 10))
	set("cpu", "cpu.cfs_quota_us", strconv.FormatInt(q, 10))
	shares := uint64(1024)
	switch {
	case r.CPUShares > 0:
		shares = clamp(r.CPUShares, 2, 262144)
	case r.CPUWeight > 0:
		shares = cpuWeightToShares(r.CPUWeight)
	}
	set("cpu", "cpu.shares", strconv.FormatUint(shares, 10))
	set("memory", "memory.limit_in_bytes", limitValue(r.MemoryMax, "-1"))
	if r.MemoryLow > 0 {
		set("memory", "memory.soft_limit_in_bytes", strconv.FormatUint(r.MemoryLow, 10))
	}
	set("pids", "pids.max", limitValue(r.TasksMax, "max"))
	if r.IOWeight > 0 {
		// Only with an I/O scheduler that supports weights.
		for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
			if _, err := os.Stat(filepath.Join(m.Path("blkio", path), f)); err == nil {
				set("blkio", f, strconv.FormatUint(ioWeightToBlkio(r.IOWeight), 10))
				break
			}
		}
	}
	if r.AllowedCPUs != "" {
		set("cpuset", "cpuset.cpus", r.AllowedCPUs)
	}
	if r.AllowedMemoryNodes != "" {
		set("cpuset", "cpuset.mems", r.AllowedMemoryNodes)
	}
	return errors.Join(errs...)
}

func (m *v1) ProcsFiles(path string) []string {
	d := m.dirs(path)
	for i := range d {
		d[i] = filepath.Join(d[i], "cgroup.procs")
	}
	return d
}

func (m *v1) Enter(path string, pid int) error {
	for _, f := range m.ProcsFiles(path) {
		if err := write(f, strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Pids is the union over all hierarchies: a process that left the group in
// one hierarchy is still ours if it is in another.
func (m *v1) Pids(path string) ([]int, error) {
	set := map[int]bool{}
	for _, d := range m.dirs(path) {
		if err := readPids(d, set); err != nil {
			return nil, fmt.Errorf("pids of cgroup %s: %w", d, err)
		}
	}
	return sortedPids(set), nil
}

// Kill freezes the group (if the freezer is mounted) so that nothing can
// fork while we collect PIDs, signals every process, and thaws it so that
// the signals are acted on.
func (m *v1) Kill(path string, sig syscall.Signal) error {
	if fz, ok := m.mounts["freezer"]; ok {
		state := filepath.Join(fz, m.base, clean(path), "freezer.state")
		if _, err := os.Stat(state); err == nil && write(state, "FROZEN") == nil {
			defer write(state, "THAWED")
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				if s, _ := readString(state); s == "FROZEN" {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	return killLoop(func() ([]int, error) { return m.Pids(path) }, sig)
}

func (m *v1) Remove(path string) error {
	var errs []error
	deadline := time.Now().Add(removeWait)
	for _, d := range m.dirs(path) {
		if err := removeTree(d, rmdir, deadline); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *v1) Stats(path string) (Stats, error) {
	var s Stats
	var err error
	if _, ok := m.mounts["cpuacct"]; ok {
		if s.CPUUsageNS, err = readUint(filepath.Join(m.Path("cpuacct", path), "cpuacct.usage")); err != nil {
			return s, fmt.Errorf("stats of cgroup %s: %w", path, err)
		}
	}
	if _, ok := m.mounts["memory"]; ok {
		dir := m.Path("memory", path)
		if s.MemoryUsage, err = readUint(filepath.Join(dir, "memory.usage_in_bytes")); err != nil {
			return s, fmt.Errorf("stats of cgroup %s: %w", path, err)
		}
		st, err := readKV(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return s, fmt.Errorf("stats of cgroup %s: %w", path, err)
		}
		inactive, ok := st["total_inactive_file"]
		if !ok {
			inactive = st["inactive_file"]
		}
		s.MemoryWorkingSet = s.MemoryUsage - min(inactive, s.MemoryUsage)
		lim, err := readUint(filepath.Join(dir, "memory.limit_in_bytes"))
		if err != nil {
			return s, fmt.Errorf("stats of cgroup %s: %w", path, err)
		}
		if lim < 1<<62 { // "unlimited" is PAGE_COUNTER_MAX pages
			s.MemoryLimit = lim
		}
	}
	if _, ok := m.mounts["pids"]; ok {
		if s.Pids, err = readUint(filepath.Join(m.Path("pids", path), "pids.current")); err != nil {
			return s, fmt.Errorf("stats of cgroup %s: %w", path, err)
		}
	}
	return s, nil
}
