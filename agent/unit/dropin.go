package unit

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// dropInBases lists the names whose "<name>.d/" directories apply to u,
// most specific first: the unit and its aliases, its template, the
// dash-prefix hierarchy ("a-b-.service", "a-.service") and the type
// ("service").
func dropInBases(u *Unit) []string {
	names := append([]string{u.Name}, u.Aliases...)
	if t := TemplateOf(u.Name); t != "" {
		names = append(names, t)
	}
	prefix, _, suffix := SplitName(u.Name)
	for i := len(prefix) - 2; i > 0; i-- {
		if prefix[i] == '-' {
			names = append(names, prefix[:i+1]+"."+suffix)
		}
	}
	return append(names, suffix)
}

// dropIns returns u's "*.conf" drop-ins: gathered from every search
// directory, a file name in a higher-priority directory hiding the same
// name further down, then applied in file-name order.
func (l *Loader) dropIns(u *Unit) []string {
	byBase := map[string]string{}
	for _, d := range l.index() {
		for _, b := range dropInBases(u) {
			if ok, isDir := d.has(b + ".d"); !ok || !isDir {
				continue
			}
			dir := filepath.Join(d.path, b+".d")
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				n := e.Name()
				if !strings.HasSuffix(n, ".conf") || e.IsDir() {
					continue
				}
				if _, ok := byBase[n]; !ok {
					byBase[n] = filepath.Join(dir, n)
				}
			}
		}
	}
	names := make([]string, 0, len(byBase))
	for n := range byBase {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byBase[n]
	}
	return out
}

// addLinkDeps adds Wants=/Requires= for the entries of "<name>.wants/" and
// "<name>.requires/" in every search directory (enable creates these).
func (l *Loader) addLinkDeps(u *Unit) {
	names := append([]string{u.Name}, u.Aliases...)
	if t := TemplateOf(u.Name); t != "" {
		names = append(names, t)
	}
	_, inst, _ := SplitName(u.Name)
	for _, d := range l.index() {
		for _, n := range names {
			for suffix, dep := range map[string]Dep{".wants": Wants, ".requires": Requires} {
				if ok, isDir := d.has(n + suffix); !ok || !isDir {
					continue
				}
				dir := filepath.Join(d.path, n+suffix)
				ents, err := os.ReadDir(dir)
				if err != nil {
					continue
				}
				for _, e := range ents {
					w := e.Name()
					switch {
					case !ValidName(w):
						u.Warnings = append(u.Warnings, Warning{File: filepath.Join(dir, w), Msg: "not a unit name; ignored"})
					case IsTemplate(w) && inst != "":
						p, _, s := SplitName(w)
						addDep(u, dep, p+"@"+inst+"."+s)
					case IsTemplate(w):
						u.Warnings = append(u.Warnings, Warning{File: filepath.Join(dir, w), Msg: fmt.Sprintf("template %s linked without an instance; ignored", w)})
					default:
						addDep(u, dep, w)
					}
				}
			}
		}
	}
}
