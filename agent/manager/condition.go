package manager

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/job"
	"corral.io/corral/agent/unit"
)

// checkConditions evaluates Condition*= and Assert*= before a start, with
// systemd's rules: all non-trigger conditions must hold, and if any trigger
// ('|') conditions exist at least one of them must. A failed condition skips
// the unit (job result "skipped"); a failed assert fails the job.
func (m *Manager) checkConditions(u *unit.Unit) error {
	for _, assert := range []bool{true, false} {
		var trig, trigOK bool
		for _, c := range u.Conditions {
			if c.Assert != assert {
				continue
			}
			ok, known := evalCondition(c)
			if !known {
				m.log.Warn("condition not supported, treated as true", "unit", u.Name, "condition", c.Kind)
				ok = true
			}
			if c.Negate {
				ok = !ok
			}
			if c.Trigger {
				trig = true
				trigOK = trigOK || ok
				continue
			}
			if !ok {
				return conditionError(u, c)
			}
		}
		if trig && !trigOK {
			return conditionError(u, unit.Condition{Kind: "trigger conditions", Assert: assert})
		}
	}
	return nil
}

func conditionError(u *unit.Unit, c unit.Condition) error {
	kind := "Condition"
	sentinel := job.ErrSkipped
	if c.Assert {
		kind, sentinel = "Assert", job.ErrAssert
	}
	neg := ""
	if c.Negate {
		neg = "!"
	}
	return fmt.Errorf("unit %s: %s%s=%s%s was not met: %w", u.Name, kind, c.Kind, neg, c.Value, sentinel)
}

// evalCondition returns the raw result (before negation) and whether the
// kind is one Corral knows.
func evalCondition(c unit.Condition) (ok, known bool) {
	v := c.Value
	switch c.Kind {
	case "PathExists":
		_, err := os.Stat(v)
		return err == nil, true
	case "PathExistsGlob":
		m, _ := filepath.Glob(v)
		return len(m) > 0, true
	case "PathIsDirectory":
		fi, err := os.Stat(v)
		return err == nil && fi.IsDir(), true
	case "PathIsSymbolicLink":
		fi, err := os.Lstat(v)
		return err == nil && fi.Mode()&os.ModeSymlink != 0, true
	case "PathIsReadWrite":
		return pathWritable(v), true
	case "FileNotEmpty":
		fi, err := os.Stat(v)
		return err == nil && fi.Mode().IsRegular() && fi.Size() > 0, true
	case "FileIsExecutable":
		fi, err := os.Stat(v)
		return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0, true
	case "DirectoryNotEmpty":
		ents, err := os.ReadDir(v)
		return err == nil && len(ents) > 0, true
	case "KernelCommandLine":
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return false, true
		}
		for _, w := range strings.Fields(string(b)) {
			if w == v || strings.HasPrefix(w, v+"=") {
				return true, true
			}
		}
		return false, true
	case "Virtualization":
		return v == "yes" || v == "vm" || v == "kvm", true // Corral's machines are VMs
	case "Capability", "Security", "ControlGroupController", "FirstBoot", "NeedsUpdate", "Host", "Architecture", "KernelVersion", "Credential", "Environment", "User", "Group", "CPUs", "Memory", "OSRelease", "MemoryPressure", "CPUPressure", "IOPressure", "ACPower", "PathIsMountPoint", "PathIsEncrypted", "CPUFeature", "Firmware":
		return true, false
	}
	return true, false
}

// pathWritable reports whether p is on a read-write mount, which is what
// systemd's ConditionPathIsReadWrite= checks.
func pathWritable(p string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return false
	}
	return st.Flags&unix.ST_RDONLY == 0
}
