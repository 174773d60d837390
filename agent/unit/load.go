package unit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Loader turns unit names into Units by walking the search path. It lists
// each directory once and caches the listing; create a new Loader (cheap)
// or call Invalidate on daemon-reload.
type Loader struct {
	// Dirs is the search path, highest priority first.
	Dirs []string
	// Host is what specifiers expand against.
	Host Host

	mu      sync.Mutex
	idx     []dirIndex
	aliases map[string][]string // canonical → alias names
}

// SearchPath returns ARCHITECTURE.md's unit search path under root, with
// extra directories (--unit-dir) first.
func SearchPath(root string, extra ...string) []string {
	dirs := append([]string(nil), extra...)
	// run/corral/generator holds what Corral's generators write at boot
	// (fstab mounts, the serial getty, masks): systemd's
	// /run/systemd/generator has the same place, after /etc and /run so
	// the administrator still wins, before the packaged units it overrides.
	for _, d := range []string{"etc/corral/system", "etc/systemd/system", "run/corral/system",
		"run/systemd/system", "run/corral/generator", "lib/systemd/system", "usr/lib/systemd/system"} {
		dirs = append(dirs, filepath.Join(root, d))
	}
	return dirs
}

// NewLoader returns a loader over SearchPath(root, extraDirs...) with host
// facts read from the running system.
func NewLoader(root string, extraDirs ...string) *Loader {
	return &Loader{Dirs: SearchPath(root, extraDirs...), Host: NewHost(root)}
}

// Invalidate drops the cached directory listings (after enable/disable or
// on daemon-reload).
func (l *Loader) Invalidate() {
	l.mu.Lock()
	l.idx, l.aliases = nil, nil
	l.mu.Unlock()
}

func (l *Loader) index() []dirIndex {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.idx == nil {
		l.idx = make([]dirIndex, len(l.Dirs))
		for i, d := range l.Dirs {
			l.idx[i] = readIndex(d)
		}
	}
	return l.idx
}

// located is where a name resolved to.
type located struct {
	name   string // canonical name
	path   string // fragment, or builtinPrefix+name
	masked bool
}

const maxLinkDepth = 16

// locate finds the fragment for name, following alias symlinks, templates
// and the built-in units.
func (l *Loader) locate(name string, depth int) (located, bool) {
	if depth > maxLinkDepth {
		return located{}, false
	}
	for _, d := range l.index() {
		e, ok := d.entries[name]
		if !ok || e.IsDir() {
			continue
		}
		p := filepath.Join(d.path, name)
		if e.Type()&os.ModeSymlink != 0 {
			t, err := os.Readlink(p)
			if err != nil {
				continue
			}
			if !filepath.IsAbs(t) {
				t = filepath.Join(d.path, t)
			}
			if t == "/dev/null" {
				return located{name: name, path: p, masked: true}, true
			}
			if base := filepath.Base(t); base != name && ValidName(base) && TypeOf(base) == TypeOf(name) {
				if loc, ok := l.locate(base, depth+1); ok {
					return loc, true
				}
				if fi, err := os.Stat(t); err == nil && fi.Mode().IsRegular() {
					return located{name: base, path: t, masked: fi.Size() == 0}, true
				}
				continue
			}
			fi, err := os.Stat(t)
			if err != nil || !fi.Mode().IsRegular() {
				continue // dangling link: look further down the path
			}
			return located{name: name, path: t, masked: fi.Size() == 0}, true
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		return located{name: name, path: p, masked: fi.Size() == 0}, true
	}
	if tmpl := TemplateOf(name); tmpl != "" {
		if loc, ok := l.locate(tmpl, depth+1); ok {
			_, inst, _ := SplitName(name)
			prefix, _, suffix := SplitName(loc.name)
			loc.name = prefix + "@" + inst + "." + suffix
			return loc, true
		}
	}
	if t, ok := builtinAliases[name]; ok {
		return l.locate(t, depth+1)
	}
	if _, ok := builtinText(name); ok {
		return located{name: name, path: builtinPrefix + name}, true
	}
	return located{}, false
}

// Canonical resolves an alias (symlink or built-in) to the name the unit is
// loaded under; unknown names are returned unchanged.
func (l *Loader) Canonical(name string) string {
	if loc, ok := l.locate(name, 0); ok {
		return loc.name
	}
	return name
}

// aliasesOf lists the other names that resolve to canonical.
func (l *Loader) aliasesOf(canonical string) []string {
	l.mu.Lock()
	m := l.aliases
	l.mu.Unlock()
	if m == nil {
		m = map[string][]string{}
		seen := map[string]bool{}
		for _, d := range l.index() {
			for n, e := range d.entries {
				if e.Type()&os.ModeSymlink == 0 || seen[n] || !ValidName(n) {
					continue
				}
				seen[n] = true
				if loc, ok := l.locate(n, 0); ok && loc.name != n && !loc.masked {
					m[loc.name] = append(m[loc.name], n)
				}
			}
		}
		for a := range builtinAliases {
			if loc, ok := l.locate(a, 0); ok && loc.name != a && !seen[a] {
				m[loc.name] = append(m[loc.name], a)
			}
		}
		l.mu.Lock()
		l.aliases = m
		l.mu.Unlock()
	}
	out := append([]string(nil), m[canonical]...)
	if tmpl := TemplateOf(canonical); tmpl != "" { // instance of an aliased template
		_, inst, _ := SplitName(canonical)
		for _, a := range m[tmpl] {
			p, _, s := SplitName(a)
			out = append(out, p+"@"+inst+"."+s)
		}
	}
	sort.Strings(out)
	return out
}

// Load loads one unit by name. It never returns nil and never fails: every
// problem is reported through LoadState, LoadError and Warnings, so a broken
// unit cannot affect any other.
func (l *Loader) Load(name string) *Unit {
	u := newUnit(name)
	switch {
	case !ValidName(name):
		u.LoadState, u.LoadError = LoadError, fmt.Sprintf("invalid unit name %q", name)
		return u
	case IsTemplate(name):
		u.LoadState, u.LoadError = LoadError, fmt.Sprintf("%s is a template; load an instance such as %s", name, strings.Replace(name, "@.", "@instance.", 1))
		return u
	}
	loc, ok := l.locate(name, 0)
	if !ok && u.Type == TypeSlice {
		// systemd.slice(5): slices exist implicitly, so Slice=a-b.slice
		// works without a file; drop-ins still apply.
		loc, ok = located{name: name}, true
	}
	if !ok {
		u.LoadState, u.LoadError = LoadNotFound, fmt.Sprintf("unit %s not found in %s", name, strings.Join(l.Dirs, ":"))
		return u
	}
	if loc.name != name {
		u = newUnit(loc.name)
	}
	u.Path = loc.path
	u.Aliases = l.aliasesOf(loc.name)
	if loc.name != name && !contains(u.Aliases, name) {
		u.Aliases = append(u.Aliases, name)
	}
	if loc.masked {
		u.LoadState, u.LoadError = LoadMasked, fmt.Sprintf("unit %s is masked (%s)", name, loc.path)
		return u
	}
	text, err := l.readFragment(loc.path)
	if err != nil {
		u.LoadState, u.LoadError = LoadError, fmt.Sprintf("read %s: %v", loc.path, err)
		return u
	}
	var files, texts []string
	if loc.path != "" {
		files, texts = []string{loc.path}, []string{text}
	}
	for _, p := range l.dropIns(u) {
		b, err := os.ReadFile(p)
		if err != nil {
			u.Warnings = append(u.Warnings, Warning{File: p, Msg: fmt.Sprintf("drop-in skipped: %v", err)})
			continue
		}
		u.DropIns = append(u.DropIns, p)
		files, texts = append(files, p), append(texts, string(b))
	}
	l.build(u, files, texts)
	if u.LoadState == LoadLoaded {
		l.addLinkDeps(u)
		dedupDeps(u)
	}
	return u
}

// ParseString builds a transient unit (generated by the manager, e.g. for
// CRI containers) from text, with the same checks as a file.
func (l *Loader) ParseString(name, text string) *Unit {
	u := newUnit(name)
	u.Transient = true
	if !ValidName(name) || IsTemplate(name) {
		u.LoadState, u.LoadError = LoadError, fmt.Sprintf("invalid unit name %q", name)
		return u
	}
	l.build(u, []string{name}, []string{text})
	return u
}

// build parses and applies files in order, then finalizes the unit.
func (l *Loader) build(u *Unit, files, texts []string) {
	a := &applier{u: u, spec: specCtx{host: &l.Host, name: u.Name, fragment: u.Path}, last: map[string]assignment{}, origin: u.Name}
	if len(files) > 0 {
		a.origin = files[0]
	}
	for i, f := range files {
		as, err := parseText(f, texts[i])
		if err != nil {
			u.LoadState, u.LoadError = LoadError, err.Error()
			return
		}
		a.apply(as)
		if a.fatal != nil {
			break
		}
	}
	if a.fatal == nil {
		a.fatal = a.finalize()
	}
	if a.fatal != nil {
		var se *SyntaxError
		if errors.As(a.fatal, &se) {
			u.LoadState = LoadError
		} else {
			u.LoadState = LoadBadSetting
		}
		u.LoadError = a.fatal.Error()
		return
	}
	u.LoadState = LoadLoaded
	implicitDeps(u)
	dedupDeps(u)
}

func (l *Loader) readFragment(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	if name, ok := strings.CutPrefix(path, builtinPrefix); ok {
		t, _ := builtinText(name)
		return t, nil
	}
	b, err := os.ReadFile(path)
	return string(b), err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Names lists every loadable unit name on the search path (fragments,
// aliases and built-ins; bare templates are not loadable and are left out).
func (l *Loader) Names() ([]string, error) {
	set := map[string]bool{}
	for _, d := range l.index() {
		for n, e := range d.entries {
			if !ValidName(n) || IsTemplate(n) || e.IsDir() {
				continue
			}
			set[n] = true
		}
	}
	for _, n := range builtinNames() {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}
