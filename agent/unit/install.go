package unit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoInstance is returned when a template without DefaultInstance= is
// enabled by its bare name.
var ErrNoInstance = errors.New("template has no DefaultInstance=; enable an instance")

// Installer implements systemctl enable/disable/mask/unmask/is-enabled by
// creating and removing symlinks in Dir, so that the result is exactly what
// systemd would see: a .wants/ link is enablement, a /dev/null link is a mask.
type Installer struct {
	Loader *Loader
	Dir    string // usually <root>/etc/corral/system
}

// NewInstaller returns an installer writing into <root>/etc/corral/system.
func NewInstaller(l *Loader, root string) *Installer {
	return &Installer{Loader: l, Dir: filepath.Join(root, "etc/corral/system")}
}

// Change is one filesystem change, printed like systemctl does.
type Change struct {
	Type   string // "symlink" or "unlink"
	Path   string
	Source string // link target for "symlink"
}

func (c Change) String() string {
	if c.Type == "symlink" {
		return fmt.Sprintf("Created symlink %s → %s.", c.Path, c.Source)
	}
	return fmt.Sprintf("Removed %q.", c.Path)
}

// Enable creates the [Install] links of each unit (and of its Also= units).
func (in *Installer) Enable(names ...string) ([]Change, error) {
	var out []Change
	seen := map[string]bool{}
	for _, n := range names {
		c, err := in.enable(n, seen)
		out = append(out, c...)
		if err != nil {
			in.Loader.Invalidate()
			return out, err
		}
	}
	in.Loader.Invalidate()
	return out, nil
}

func (in *Installer) enable(name string, seen map[string]bool) ([]Change, error) {
	if seen[name] {
		return nil, nil
	}
	seen[name] = true
	u, err := in.installable(name)
	if err != nil {
		return nil, err
	}
	var out []Change
	link := func(path string) error {
		c, err := in.symlink(u.Path, path)
		if c != nil {
			out = append(out, *c)
		}
		return err
	}
	for _, t := range u.Install.WantedBy {
		if err := link(filepath.Join(in.Dir, t+".wants", u.Name)); err != nil {
			return out, err
		}
	}
	for _, t := range u.Install.RequiredBy {
		if err := link(filepath.Join(in.Dir, t+".requires", u.Name)); err != nil {
			return out, err
		}
	}
	for _, t := range u.Install.UpheldBy {
		if err := link(filepath.Join(in.Dir, t+".upholds", u.Name)); err != nil {
			return out, err
		}
	}
	for _, a := range u.Install.Alias {
		if TypeOf(a) != u.Type {
			return out, fmt.Errorf("enable %s: Alias=%s has a different type", u.Name, a)
		}
		if err := link(filepath.Join(in.Dir, a)); err != nil {
			return out, err
		}
	}
	for _, a := range u.Install.Also {
		c, err := in.enable(a, seen)
		out = append(out, c...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// installable loads the unit whose [Install] section enable should use,
// instantiating a bare template with DefaultInstance=.
func (in *Installer) installable(name string) (*Unit, error) {
	if IsTemplate(name) {
		loc, ok := in.Loader.locate(name, 0)
		if !ok {
			return nil, fmt.Errorf("unit %s: %w", name, fs.ErrNotExist)
		}
		text, err := in.Loader.readFragment(loc.path)
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", name, err)
		}
		as, err := parseText(loc.path, text)
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", name, err)
		}
		inst := ""
		for _, a := range as {
			if a.Section == "Install" && a.Key == "DefaultInstance" {
				inst = a.Value
			}
		}
		if inst == "" {
			return nil, fmt.Errorf("enable %s: %w", name, ErrNoInstance)
		}
		name = strings.Replace(name, "@.", "@"+inst+".", 1)
	}
	u := in.Loader.Load(name)
	switch u.LoadState {
	case LoadNotFound:
		return nil, fmt.Errorf("unit %s: %w", name, fs.ErrNotExist)
	case LoadMasked:
		return nil, fmt.Errorf("unit %s is masked", name)
	case LoadError:
		return nil, fmt.Errorf("unit %s: %s", name, u.LoadError)
	}
	if strings.HasPrefix(u.Path, builtinPrefix) {
		return nil, fmt.Errorf("unit %s is built in and has no [Install] section", name)
	}
	return u, nil
}

// symlink creates path → target; an identical existing link is no change,
// a different one is an error (systemctl refuses to overwrite too).
func (in *Installer) symlink(target, path string) (*Change, error) {
	if cur, err := os.Readlink(path); err == nil {
		if cur == target {
			return nil, nil
		}
		return nil, fmt.Errorf("%s already exists and links to %s", path, cur)
	} else if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%s already exists and is not a symlink", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.Symlink(target, path); err != nil {
		return nil, fmt.Errorf("link %s: %w", path, err)
	}
	return &Change{Type: "symlink", Path: path, Source: target}, nil
}

// Disable removes every link in Dir that enables the units (by name, by
// alias, or by pointing at the same fragment), and recurses into Also=.
// Masks are left alone.
func (in *Installer) Disable(names ...string) ([]Change, error) {
	match := map[string]bool{}  // link names
	frags := map[string]bool{}  // fragment paths
	prefix := map[string]bool{} // template prefixes "foo@" + suffix
	var collect func(n string)
	collect = func(n string) {
		if match[n] {
			return
		}
		match[n] = true
		if IsTemplate(n) {
			p, _, s := SplitName(n)
			prefix[p+"@|."+s] = true
		}
		loc, ok := in.Loader.locate(n, 0)
		if !ok || loc.masked {
			return
		}
		if !strings.HasPrefix(loc.path, builtinPrefix) {
			frags[loc.path] = true
		}
		if IsTemplate(n) {
			return
		}
		u := in.Loader.Load(n)
		for _, a := range u.Install.Alias {
			match[a] = true
		}
		for _, a := range u.Install.Also {
			collect(a)
		}
	}
	for _, n := range names {
		collect(n)
	}
	var out []Change
	err := filepath.WalkDir(in.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		t, err := os.Readlink(p)
		if err != nil || t == "/dev/null" {
			return nil
		}
		base := filepath.Base(p)
		bp, _, bs := SplitName(base)
		if match[base] || frags[t] || prefix[bp+"@|."+bs] && strings.Contains(base, "@") {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("disable: %w", err)
			}
			out = append(out, Change{Type: "unlink", Path: p})
		}
		return nil
	})
	in.Loader.Invalidate()
	return out, err
}

// Mask links each unit to /dev/null in Dir.
func (in *Installer) Mask(names ...string) ([]Change, error) {
	var out []Change
	for _, n := range names {
		if !ValidName(n) {
			return out, fmt.Errorf("mask: invalid unit name %q", n)
		}
		c, err := in.symlink("/dev/null", filepath.Join(in.Dir, n))
		if c != nil {
			out = append(out, *c)
		}
		if err != nil {
			return out, fmt.Errorf("mask %s: %w", n, err)
		}
	}
	in.Loader.Invalidate()
	return out, nil
}

// Unmask removes /dev/null links for each unit from Dir.
func (in *Installer) Unmask(names ...string) ([]Change, error) {
	var out []Change
	for _, n := range names {
		p := filepath.Join(in.Dir, n)
		if t, err := os.Readlink(p); err == nil && t == "/dev/null" {
			if err := os.Remove(p); err != nil {
				return out, fmt.Errorf("unmask %s: %w", n, err)
			}
			out = append(out, Change{Type: "unlink", Path: p})
		}
	}
	in.Loader.Invalidate()
	return out, nil
}

// IsEnabled returns systemctl is-enabled's answer: enabled,
// enabled-runtime, disabled, static, masked, alias, indirect, generated,
// transient, linked or not-found.
func (in *Installer) IsEnabled(name string) (string, error) {
	loc, ok := in.Loader.locate(name, 0)
	if !ok {
		return "not-found", nil
	}
	if loc.masked {
		return "masked", nil
	}
	if loc.name != name {
		return "alias", nil
	}
	switch {
	case strings.Contains(loc.path, "/run/systemd/generator"):
		return "generated", nil
	case strings.Contains(loc.path, "/run/systemd/transient"), strings.Contains(loc.path, "/run/corral/transient"):
		return "transient", nil
	}
	if in.linked(name) {
		return "linked", nil
	}
	state := in.linkState(name)
	if state != "" {
		return state, nil
	}
	var inst Install
	if IsTemplate(name) {
		text, _ := in.Loader.readFragment(loc.path)
		as, _ := parseText(loc.path, text)
		for _, a := range as {
			if a.Section == "Install" {
				switch a.Key {
				case "WantedBy", "RequiredBy", "UpheldBy", "Alias":
					inst.WantedBy = append(inst.WantedBy, a.Value)
				case "Also":
					inst.Also = append(inst.Also, a.Value)
				}
			}
		}
	} else {
		inst = in.Loader.Load(name).Install
	}
	switch {
	case len(inst.WantedBy)+len(inst.RequiredBy)+len(inst.UpheldBy)+len(inst.Alias) > 0:
		return "disabled", nil
	case len(inst.Also) > 0:
		return "indirect", nil
	}
	return "static", nil
}

// configDirs are where enablement counts as persistent (not /run, not the
// vendor directories whose .wants/ links are static).
func (in *Installer) configDirs() (persistent, runtime []string) {
	for _, d := range in.Loader.Dirs {
		switch {
		case strings.Contains(d, "/lib/systemd/"):
		case strings.Contains(d, "/run/"):
			runtime = append(runtime, d)
		default:
			persistent = append(persistent, d)
		}
	}
	if !contains(persistent, in.Dir) {
		persistent = append(persistent, in.Dir)
	}
	return persistent, runtime
}

// linkState reports "enabled", "enabled-runtime" or "indirect" (another
// instance of a template is enabled) from .wants/.requires/.upholds links.
func (in *Installer) linkState(name string) string {
	persistent, runtime := in.configDirs()
	p, _, s := SplitName(name)
	find := func(dirs []string) (exact, instance bool) {
		for _, d := range dirs {
			ms, _ := filepath.Glob(filepath.Join(d, "*.*s", "*"))
			for _, m := range ms {
				parent := filepath.Ext(filepath.Dir(m))
				if parent != ".wants" && parent != ".requires" && parent != ".upholds" {
					continue
				}
				b := filepath.Base(m)
				if b == name {
					exact = true
				} else if bp, bi, bs := SplitName(b); bi != "" && bp == p && bs == s {
					instance = true
				}
			}
		}
		return exact, instance
	}
	if e, i := find(persistent); e {
		return "enabled"
	} else if i {
		return "indirect"
	}
	if e, _ := find(runtime); e {
		return "enabled-runtime"
	}
	return ""
}

// linked reports a top-level link in a config dir with the unit's own name
// that points outside the search path (systemctl link).
func (in *Installer) linked(name string) bool {
	persistent, _ := in.configDirs()
	for _, d := range persistent {
		t, err := os.Readlink(filepath.Join(d, name))
		if err != nil || t == "/dev/null" || filepath.Base(t) != name {
			continue
		}
		inPath := false
		for _, s := range in.Loader.Dirs {
			if filepath.Dir(t) == s {
				inPath = true
			}
		}
		return !inPath
	}
	return false
}
