package unit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates files under root; a value starting with "-> " makes a
// symlink to the rest of the value.
func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// testHost pins every host fact so specifier tests are deterministic.
func testHost(root string) Host {
	return Host{Root: root, Hostname: "node1.example.com", MachineID: "mid", BootID: "bid",
		KernelRelease: "6.18.0", Arch: "x86-64", User: "root", UID: "0", Group: "root", GID: "0",
		Home: "/root", Shell: "/bin/sh", OSRelease: map[string]string{"ID": "debian", "VERSION_ID": "12"}}
}

// newTestLoader returns a loader over a fresh root with the given files
// (paths relative to root) and pinned host facts.
func newTestLoader(t testing.TB, files map[string]string) (*Loader, string) {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, files)
	l := NewLoader(root)
	l.Host = testHost(root)
	return l, root
}

func warnMsgs(u *Unit) []string {
	var out []string
	for _, w := range u.Warnings {
		out = append(out, w.String())
	}
	return out
}
