package sysinit

import (
	"bufio"
	"io"
	"path"
	"strings"
)

// ModuleName normalises a module file or name the way modprobe does:
// "kernel/drivers/acpi/button.ko.xz" and "button" are both "button", and
// '-' equals '_'.
func ModuleName(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// ModulesDep maps a module name to its file and its dependencies' files
// (paths relative to /lib/modules/$(uname -r)).
type ModulesDep map[string]ModuleDep

// ModuleDep is one line of modules.dep.
type ModuleDep struct {
	File string
	Deps []string // in modules.dep order: a module's own dependencies come after it
}

// ParseModulesDep parses modules.dep ("file: dep dep ..." per line).
func ParseModulesDep(s string) ModulesDep {
	m, _ := ReadModulesDep(strings.NewReader(s))
	return m
}

// ReadModulesDep reads modules.dep line by line and keeps only the modules
// in names (every module if names is empty). PID 1 needs two of some
// thousands: a distribution kernel's modules.dep is hundreds of KiB, and
// holding it (and a map of all of it) would grow PID 1's heap for its
// whole life, as the Go runtime returns freed memory only slowly.
func ReadModulesDep(r io.Reader, names ...string) (ModulesDep, error) {
	want := wanted(names)
	m := ModulesDep{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		file, deps, ok := strings.Cut(sc.Text(), ":")
		file = strings.TrimSpace(file)
		if !ok || file == "" || strings.HasPrefix(file, "#") {
			continue
		}
		name := ModuleName(file)
		if want != nil && !want[name] {
			continue
		}
		m[name] = ModuleDep{File: file, Deps: strings.Fields(deps)}
	}
	return m, sc.Err()
}

func wanted(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	w := make(map[string]bool, len(names))
	for _, n := range names {
		w[ModuleName(n)] = true
	}
	return w
}

// LoadOrder returns the files to load for name, dependencies first: depmod
// lists them so that loading them in reverse order satisfies each one's
// needs, which is what modprobe does. It returns nil for an unknown module.
func (m ModulesDep) LoadOrder(name string) []string {
	d, ok := m[ModuleName(name)]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(d.Deps)+1)
	for i := len(d.Deps) - 1; i >= 0; i-- {
		out = append(out, d.Deps[i])
	}
	return append(out, d.File)
}

// ParseModulesBuiltin returns the set of built-in module names from
// modules.builtin (one path per line).
func ParseModulesBuiltin(s string) map[string]bool {
	m, _ := ReadModulesBuiltin(strings.NewReader(s))
	return m
}

// ReadModulesBuiltin is ParseModulesBuiltin reading line by line, keeping
// only names (all if empty), for the same reason as ReadModulesDep.
func ReadModulesBuiltin(r io.Reader, names ...string) (map[string]bool, error) {
	want := wanted(names)
	m := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		if n := ModuleName(l); want == nil || want[n] {
			m[n] = true
		}
	}
	return m, sc.Err()
}
