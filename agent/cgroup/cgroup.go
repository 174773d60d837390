package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"corral.io/corral/agent/unit"
)

// Stats is a cgroup's resource usage, for `status` and the CRI.
type Stats struct {
	CPUUsageNS       uint64 // total CPU time, nanoseconds
	MemoryUsage      uint64 // bytes, including page cache
	MemoryWorkingSet uint64 // usage minus inactive file cache (what kubelet calls working set)
	MemoryLimit      uint64 // bytes; 0 = unlimited
	Pids             uint64 // tasks now in the group
}

// Manager creates, configures, inspects and kills cgroups. Paths are
// relative to the base given to New, e.g. "system.slice/foo.service".
type Manager interface {
	Version() int
	Create(path string) error
	Apply(path string, r unit.Resources) error
	ProcsFiles(path string) []string
	Enter(path string, pid int) error
	Pids(path string) ([]int, error)
	Kill(path string, sig syscall.Signal) error
	Remove(path string) error
	Stats(path string) (Stats, error)
	Path(controller string, path string) string
}

// Controllers are the v1 hierarchies Corral uses ("systemd" is the
// controller-less name=systemd hierarchy, which only tracks membership).
var Controllers = []string{"cpu", "cpuacct", "memory", "pids", "blkio", "devices", "freezer", "cpuset", "systemd"}

// New detects the cgroup layout from /proc/self/mountinfo: v1 if any v1
// hierarchy is mounted (legacy and hybrid layouts), else v2.
func New(base string) (Manager, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	defer f.Close()
	v1, v2, err := ParseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("cgroup: /proc/self/mountinfo: %w", err)
	}
	switch {
	case len(v1) > 0:
		return bounded(NewV1(v1, base)), nil
	case v2 != "":
		return bounded(NewV2(v2, base)), nil
	}
	return nil, errors.New("cgroup: no cgroup filesystem mounted")
}

// ParseMountinfo returns the mount point of each v1 controller Corral uses
// and the cgroup2 mount point ("" if none; with several, the one at
// /sys/fs/cgroup is preferred).
func ParseMountinfo(r io.Reader) (v1 map[string]string, v2 string, err error) {
	v1 = map[string]string{}
	used := map[string]bool{}
	for _, c := range Controllers {
		used[c] = true
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(f) < sep+4 {
			continue
		}
		mnt, fstype, super := f[4], f[sep+1], f[sep+3]
		switch fstype {
		case "cgroup2":
			if v2 == "" || mnt == "/sys/fs/cgroup" {
				v2 = mnt
			}
		case "cgroup":
			for _, o := range strings.Split(super, ",") {
				o = strings.TrimPrefix(o, "name=")
				if used[o] {
					if _, dup := v1[o]; !dup {
						v1[o] = mnt
					}
				}
			}
		}
	}
	return v1, v2, sc.Err()
}

// clean keeps a relative path inside the base.
func clean(path string) string {
	return filepath.Clean("/" + path)[1:]
}

// write writes a control file. Errors name the file.
func write(file, val string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", val, file, err)
	}
	return nil
}

func readString(file string) (string, error) {
	b, err := os.ReadFile(file)
	return strings.TrimSpace(string(b)), err
}

func readUint(file string) (uint64, error) {
	s, err := readString(file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// readKV reads a "key value" file such as memory.stat or cpu.stat.
func readKV(file string) (map[string]uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, nil
}

// readPids reads cgroup.procs of dir and of every group below it.
func readPids(dir string, into map[int]bool) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a group removed while we walk
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil {
				into[pid] = true
			}
		}
		return nil
	})
}

func sortedPids(set map[int]bool) []int {
	pids := make([]int, 0, len(set))
	for p := range set {
		pids = append(pids, p)
	}
	sort.Ints(pids)
	return pids
}

// killLoop signals every process until no new one shows up: a process may
// fork between our reading cgroup.procs and the signal reaching it.
func killLoop(pids func() ([]int, error), sig syscall.Signal) error {
	seen := map[int]bool{}
	for round := 0; round < 100; round++ {
		list, err := pids()
		if err != nil {
			return err
		}
		fresh := 0
		for _, p := range list {
			if seen[p] {
				continue
			}
			seen[p] = true
			fresh++
			if err := syscall.Kill(p, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill %d: %w", p, err)
			}
		}
		if fresh == 0 {
			return nil
		}
	}
	return nil
}

// removeTree removes dir and the groups below it, children first. rmdir of
// a group fails with EBUSY while it still has tasks, including tasks that
// are exiting but not yet reaped, so it retries until deadline.
func removeTree(dir string, rmdir func(string) error, deadline time.Time) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		for {
			err := rmdir(dirs[i])
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				pids := map[int]bool{}
				readPids(dirs[i], pids)
				if len(pids) > 0 {
					return fmt.Errorf("remove cgroup %s: still populated (pids %v): %w", dirs[i], sortedPids(pids), err)
				}
				return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// removeWait is how long Remove waits for exiting processes to leave.
const removeWait = 2 * time.Second

func rmdir(p string) error {
	if err := syscall.Rmdir(p); err != nil {
		return &os.PathError{Op: "rmdir", Path: p, Err: err}
	}
	return nil
}

// cpuSharesToWeight and cpuWeightToShares convert between the v1 scale
// (2..262144, default 1024) and the v2 scale (1..10000, default 100) the way
// systemd does.
func cpuSharesToWeight(s uint64) uint64 { return clamp(s*100/1024, 1, 10000) }
func cpuWeightToShares(w uint64) uint64 { return clamp(w*1024/100, 2, 262144) }

// ioWeightToBlkio converts IOWeight= (1..10000, default 100) to
// blkio.weight (10..1000, default 500).
func ioWeightToBlkio(w uint64) uint64 { return clamp(w*500/100, 10, 1000) }

func clamp(v, lo, hi uint64) uint64 {
	return min(max(v, lo), hi)
}

// quota returns the CFS quota and period in microseconds for r.
func quota(r unit.Resources) (quotaUS int64, periodUS uint64) {
	period := r.CPUQuotaPeriod
	if period <= 0 {
		period = 100 * time.Millisecond
	}
	periodUS = uint64(period / time.Microsecond)
	if r.CPUQuotaPerSec <= 0 {
		return -1, periodUS
	}
	q := int64(r.CPUQuotaPerSec) * int64(period) / int64(time.Second) / int64(time.Microsecond)
	return max(q, 1000), periodUS // the kernel's minimum is 1ms
}

// limitValue renders a limit for a cgroup file: 0 (unset) and
// math.MaxUint64 (the unit file said "infinity") both mean no limit, which
// each file spells its own way ("max", or "-1" for v1 memory).
func limitValue(v uint64, none string) string {
	if v == 0 || v == math.MaxUint64 {
		return none
	}
	return strconv.FormatUint(v, 10)
}
