//go:build integration

package unit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// debCache keeps downloaded packages between runs (the test reuses them).
const debCache = "/var/cache/corral-test/debs"

// debianPackages ship the unit files the loader must accept unmodified.
var debianPackages = []string{"openssh-server", "cron", "rsyslog", "nginx-common", "dbus",
	"systemd", "udisks2", "avahi-daemon"}

// fetchDebs downloads missing packages with apt-get into the cache.
func fetchDebs(t *testing.T) []string {
	t.Helper()
	if err := os.MkdirAll(debCache, 0o755); err != nil {
		t.Fatal(err)
	}
	var debs []string
	for _, p := range debianPackages {
		glob := filepath.Join(debCache, p+"_*.deb")
		m, _ := filepath.Glob(glob)
		if len(m) == 0 {
			cmd := exec.Command("apt-get", "download", p)
			cmd.Dir = debCache
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("apt-get download %s: %v\n%s", p, err, out)
			}
			m, _ = filepath.Glob(glob)
		}
		if len(m) == 0 {
			t.Fatalf("apt-get download %s left no %s", p, glob)
		}
		debs = append(debs, m[len(m)-1])
	}
	return debs
}

// TestDebianUnits loads every unit file of real Debian packages through the
// Loader and reports how many directive instances Corral supports.
//
//	go test -tags integration -run TestDebianUnits -v ./agent/unit
func TestDebianUnits(t *testing.T) {
	tree := t.TempDir()
	for _, deb := range fetchDebs(t) {
		if out, err := exec.Command("dpkg-deb", "-x", deb, tree).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	dirs := []string{filepath.Join(tree, "lib/systemd/system"), filepath.Join(tree, "usr/lib/systemd/system")}
	l := NewLoader(t.TempDir(), dirs...)

	var (
		files, total, warned int
		keys                 = map[string]int{} // unsupported directive → instances
		seen                 = map[string]bool{}
	)
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := e.Name()
			if e.IsDir() || !ValidName(name) {
				continue
			}
			files++
			load := name
			if IsTemplate(name) {
				load = strings.Replace(name, "@.", "@test.", 1)
			}
			u := l.Load(load)
			if u.LoadState != LoadLoaded && u.LoadState != LoadMasked {
				t.Errorf("%s: LoadState %s: %s", name, u.LoadState, u.LoadError)
				continue
			}
			if u.LoadState != LoadLoaded {
				continue
			}
			// Count each file once, even when reached through aliases.
			sources := append([]string{u.Path}, u.DropIns...)
			lineKey := map[string]string{}
			for _, src := range sources {
				if seen[src] || strings.HasPrefix(src, builtinPrefix) {
					continue
				}
				seen[src] = true
				b, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				as, err := parseText(src, string(b))
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range as {
					if strings.HasPrefix(a.Key, "X-") || strings.HasPrefix(a.Section, "X-") {
						continue
					}
					total++
					lineKey[fmt.Sprintf("%s:%d", a.File, a.Line)] = "[" + a.Section + "] " + a.Key
				}
			}
			counted := map[string]bool{}
			for _, w := range u.Warnings {
				at := fmt.Sprintf("%s:%d", w.File, w.Line)
				k, ok := lineKey[at]
				if !ok || counted[at] {
					continue
				}
				counted[at] = true
				warned++
				keys[k]++
			}
		}
	}
	if files < 100 {
		t.Fatalf("only %d unit files found; extraction failed?", files)
	}
	var list []string
	for k, n := range keys {
		list = append(list, fmt.Sprintf("%s (%d)", k, n))
	}
	sort.Strings(list)
	t.Logf("%d unit files, %d directive instances, %d warned: %.1f%% supported", files, total, warned,
		100*float64(total-warned)/float64(total))
	t.Logf("warned directives:\n%s", strings.Join(list, "\n"))
}
