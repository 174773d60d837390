package sysinit

import (
	"strconv"
	"strings"
)

// MountPoint is one line of /proc/self/mountinfo.
type MountPoint struct {
	ID, Parent int
	Target     string
	FSType     string
	Source     string
}

// BlockBacked reports whether data written to the mount can be lost: only
// a filesystem on a device needs a read-only remount when it cannot be
// unmounted. Virtual filesystems (proc, sysfs, devtmpfs, cgroup, ...) are
// also shared with other mount namespaces, so remounting them read-only
// would reach further than this machine's shutdown.
func (m MountPoint) BlockBacked() bool { return strings.HasPrefix(m.Source, "/dev/") }

// ParseMountinfo parses /proc/self/mountinfo (proc(5)), in mount order.
func ParseMountinfo(s string) []MountPoint {
	var out []MountPoint
	for _, l := range strings.Split(s, "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, MountPoint{ID: id, Parent: parent, Target: unescapeOctal(f[4]), FSType: g[0], Source: unescapeOctal(g[1])})
	}
	return out
}

// UnmountOrder returns the mounts to unmount at shutdown: every mount but
// "/", children before their parents (reverse mount order, then any child
// that was mounted later than its parent moved first).
func UnmountOrder(mounts []MountPoint) []MountPoint {
	var out []MountPoint
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Target != "/" {
			out = append(out, mounts[i])
		}
	}
	// A mount moved under a later one (mount --move) can appear before its
	// parent in mountinfo; put every child ahead of its parent.
	pos := map[int]int{}
	for i, m := range out {
		pos[m.ID] = i
	}
	for changed := true; changed; {
		changed = false
		for i, m := range out {
			if p, ok := pos[m.Parent]; ok && p < i {
				out[p], out[i] = out[i], out[p]
				pos[out[p].ID], pos[out[i].ID] = p, i
				changed = true
			}
		}
	}
	return out
}
