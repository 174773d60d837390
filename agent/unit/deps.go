package unit

import "strings"

// addDep records d → name once.
func addDep(u *Unit, d Dep, name string) {
	for _, n := range u.Deps[d] {
		if n == name {
			return
		}
	}
	u.Deps[d] = append(u.Deps[d], name)
}

// dedupDeps removes repeated names that drop-ins and .wants/ links produce.
func dedupDeps(u *Unit) {
	for d, names := range u.Deps {
		seen := make(map[string]bool, len(names))
		out := names[:0]
		for _, n := range names {
			if !seen[n] && n != u.Name {
				seen[n] = true
				out = append(out, n)
			}
		}
		if len(out) == 0 {
			delete(u.Deps, d)
			continue
		}
		u.Deps[d] = out
	}
}

// parentSlice is "a.slice" for "a-b.slice", "-.slice" for "a.slice".
func parentSlice(name string) string {
	if name == "-.slice" {
		return ""
	}
	p := strings.TrimSuffix(name, ".slice")
	if i := strings.LastIndexByte(p, '-'); i > 0 {
		return p[:i] + ".slice"
	}
	return "-.slice"
}

// implicitDeps adds the dependencies systemd derives from a unit's own
// settings (slices, socket ↔ service, bus names) and, when
// DefaultDependencies=yes, those systemd.service(5), systemd.socket(5),
// systemd.target(5) and systemd.slice(5) list under "Default Dependencies".
// Target ordering after their wanted units needs the other units, so it
// lives in FillInverse.
func implicitDeps(u *Unit) {
	two := func(a, b Dep, name string) { addDep(u, a, name); addDep(u, b, name) }
	switch u.Type {
	case TypeService:
		s := u.Service
		two(Requires, After, s.Slice)
		for _, k := range s.Sockets {
			two(Wants, After, k)
		}
		if s.Type == Dbus && s.BusName != "" {
			two(Requires, After, "dbus.socket")
		}
		if u.DefaultDependencies {
			two(Requires, After, "sysinit.target")
			addDep(u, After, "basic.target")
			two(Conflicts, Before, "shutdown.target")
		}
	case TypeSocket:
		k := u.Socket
		two(Requires, After, k.Slice)
		if !k.Accept && k.Service != "" {
			two(Triggers, Before, k.Service)
		}
		if u.DefaultDependencies {
			two(Requires, After, "sysinit.target")
			addDep(u, Before, "sockets.target")
			two(Conflicts, Before, "shutdown.target")
		}
	case TypeSlice:
		if p := parentSlice(u.Name); p != "" {
			two(Requires, After, p)
		}
		if u.DefaultDependencies {
			two(Conflicts, Before, "shutdown.target")
		}
	case TypeTarget:
		if u.DefaultDependencies {
			two(Conflicts, Before, "shutdown.target")
		}
	case TypeMount:
		// systemd.mount(5): local mounts sit between local-fs-pre.target
		// and local-fs.target; all are unmounted by umount.target. (Order
		// after parent mounts comes from whoever knows which mount units
		// exist: the fstab generator writes it explicitly.)
		if u.DefaultDependencies {
			two(Conflicts, Before, "umount.target")
			if !isNetworkMount(u.Mount) {
				addDep(u, After, "local-fs-pre.target")
				addDep(u, Before, "local-fs.target")
			}
		}
	case TypeTimer, TypePath:
		if u.DefaultDependencies {
			two(Requires, After, "sysinit.target")
			addDep(u, Before, string(u.Type)+"s.target")
			two(Conflicts, Before, "shutdown.target")
		}
	}
}

// forwardDeps are the kinds FillInverse mirrors onto their targets.
var forwardDeps = []Dep{Requires, Requisite, Wants, BindsTo, PartOf, Upholds, Conflicts,
	OnFailure, OnSuccess, After, Before, Triggers, PropagatesReloadTo, ReloadPropagatedFrom}

// FillInverse completes the dependency graph across a set of loaded units:
// it rewrites alias names to canonical names, orders each target after the
// units it wants or requires (systemd.target(5) default dependencies, unless
// the other unit has DefaultDependencies=no or is already ordered after the
// target), and records every inverse kind (RequiredBy for Requires, Before
// for After, TriggeredBy for Triggers, ...) on the named unit.
//
// A single unit cannot know who points at it, so the manager calls this
// after loading (and after every daemon-reload) with all units it holds.
// Calling it again on the same set is harmless: entries are deduplicated.
func FillInverse(units []*Unit) {
	byName := make(map[string]*Unit, len(units))
	for _, u := range units {
		byName[u.Name] = u
	}
	for _, u := range units {
		for _, a := range u.Aliases {
			if _, ok := byName[a]; !ok {
				byName[a] = u
			}
		}
	}
	type key struct {
		d Dep
		n string
	}
	sets := make(map[*Unit]map[key]bool, len(units))
	has := func(u *Unit, d Dep, n string) bool {
		s := sets[u]
		if s == nil {
			s = map[key]bool{}
			for dd, names := range u.Deps {
				for _, nn := range names {
					s[key{dd, nn}] = true
				}
			}
			sets[u] = s
		}
		return s[key{d, n}]
	}
	add := func(u *Unit, d Dep, n string) {
		if n == u.Name || has(u, d, n) {
			return
		}
		sets[u][key{d, n}] = true
		u.Deps[d] = append(u.Deps[d], n)
	}
	for _, u := range units { // canonical names first, so the inverses match
		if u.Deps == nil {
			u.Deps = map[Dep][]string{}
		}
		for d, names := range u.Deps {
			for i, n := range names {
				if o := byName[n]; o != nil && o.Name != n {
					names[i] = o.Name
				}
			}
			u.Deps[d] = names
		}
		dedupDeps(u)
	}
	for _, t := range units {
		if t.Type != TypeTarget || !t.DefaultDependencies || t.LoadState != LoadLoaded {
			continue
		}
		for _, d := range []Dep{Requires, Requisite, Wants, BindsTo} {
			for _, n := range t.Deps[d] {
				o := byName[n]
				if o == nil || !o.DefaultDependencies || has(o, After, t.Name) || has(t, Before, n) {
					continue
				}
				add(t, After, n)
			}
		}
	}
	for _, u := range units {
		for _, d := range forwardDeps {
			for _, n := range u.Deps[d] {
				if o := byName[n]; o != nil && o != u {
					add(o, d.Inverse(), u.Name)
				}
			}
		}
	}
}

// isNetworkMount reports whether a mount needs the network (systemd's
// fstype_is_network plus the _netdev option), which puts it under
// remote-fs.target instead of local-fs.target.
func isNetworkMount(m *Mount) bool {
	if m == nil {
		return false
	}
	for _, o := range strings.Split(m.Options, ",") {
		if o == "_netdev" {
			return true
		}
	}
	return IsNetworkFS(m.Type)
}

// IsNetworkFS reports whether a filesystem type is a network filesystem.
func IsNetworkFS(fstype string) bool {
	switch strings.TrimPrefix(fstype, "fuse.") {
	case "afs", "ceph", "cifs", "smb3", "smbfs", "sshfs", "ncpfs", "ncp", "nfs", "nfs4", "gfs", "gfs2", "glusterfs", "pvfs2", "ocfs2", "lustre", "davfs":
		return true
	}
	return false
}
