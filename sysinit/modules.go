package sysinit

import (
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
	m := ModulesDep{}
	for _, l := range strings.Split(s, "\n") {
		file, deps, ok := strings.Cut(l, ":")
		file = strings.TrimSpace(file)
		if !ok || file == "" || strings.HasPrefix(file, "#") {
			continue
		}
		m[ModuleName(file)] = ModuleDep{File: file, Deps: strings.Fields(deps)}
	}
	return m
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
	m := map[string]bool{}
	for _, l := range strings.Fields(s) {
		m[ModuleName(l)] = true
	}
	return m
}
