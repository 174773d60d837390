package unit

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEscapePath(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/", "-"},
		{"", "-"},
		{"/var/lib", "var-lib"},
		{"/var/lib/", "var-lib"},
		{"//var//lib", "var-lib"},
		{"/a-b", `a\x2db`},
		{"/mnt/my disk", `mnt-my\x20disk`},
		{"/.hidden/x.y", `\x2ehidden-x.y`},
		{"/srv/ü", `srv-\xc3\xbc`},
		{"/run/user/1000", "run-user-1000"},
	}
	for _, tt := range tests {
		if got := EscapePath(tt.path); got != tt.want {
			t.Errorf("EscapePath(%q) = %q, want %q", tt.path, got, tt.want)
		}
		if tt.path != "" && !strings.HasSuffix(tt.path, "/") && !strings.Contains(tt.path, "//") {
			if back := UnescapePath(tt.want); back != tt.path {
				t.Errorf("UnescapePath(%q) = %q, want %q", tt.want, back, tt.path)
			}
		}
	}
}

func TestLoadMount(t *testing.T) {
	l, _ := newTestLoader(t, map[string]string{
		lib + "var-lib.mount": `[Unit]
Description=Var lib
[Mount]
What=/dev/vdb
Where=/var/lib/
Type=ext4
Options=noatime,nodev,data=ordered
LazyUnmount=yes
DirectoryMode=0700
TimeoutSec=5s
`,
		lib + "tmp.mount":    "[Mount]\nWhat=tmpfs\nType=tmpfs\n", // Where= implied by the name
		lib + "-.mount":      "[Mount]\nWhat=/dev/vda\nWhere=/\n",
		lib + "wrong.mount":  "[Mount]\nWhat=/dev/vdb\nWhere=/srv\n",
		lib + "nowhat.mount": "[Mount]\nWhere=/nowhat\n",
		lib + "rel.mount":    "[Mount]\nWhat=x\nWhere=rel\n",
		lib + "nfs.mount":    "[Mount]\nWhat=server:/x\nType=nfs4\n",
		lib + "manual.mount": "[Unit]\nDefaultDependencies=no\n[Mount]\nWhat=x\n",
		lib + "svcsec.mount": "[Mount]\nWhat=x\n[Service]\nExecStart=/bin/true\n",
	})

	u := l.Load("var-lib.mount")
	if u.LoadState != LoadLoaded {
		t.Fatalf("var-lib.mount: %s %s", u.LoadState, u.LoadError)
	}
	want := Mount{What: "/dev/vdb", Where: "/var/lib", Type: "ext4", Options: "noatime,nodev,data=ordered",
		LazyUnmount: true, DirectoryMode: 0o700, TimeoutSec: 5 * time.Second}
	if *u.Mount != want {
		t.Errorf("var-lib.mount = %+v, want %+v", *u.Mount, want)
	}
	for _, d := range []struct {
		dep  Dep
		name string
	}{{Conflicts, "umount.target"}, {Before, "umount.target"}, {After, "local-fs-pre.target"}, {Before, "local-fs.target"}} {
		if !slices.Contains(u.Deps[d.dep], d.name) {
			t.Errorf("var-lib.mount: %s=%v lacks %s", d.dep, u.Deps[d.dep], d.name)
		}
	}

	if u := l.Load("tmp.mount"); u.LoadState != LoadLoaded || u.Mount.Where != "/tmp" || u.Mount.TimeoutSec != 90*time.Second || u.Mount.DirectoryMode != 0o755 {
		t.Errorf("tmp.mount: %s %s %+v", u.LoadState, u.LoadError, u.Mount)
	}
	if u := l.Load("-.mount"); u.LoadState != LoadLoaded || u.Mount.Where != "/" {
		t.Errorf("-.mount: %s %s %+v", u.LoadState, u.LoadError, u.Mount)
	}
	if u := l.Load("nfs.mount"); slices.Contains(u.Deps[Before], "local-fs.target") || !slices.Contains(u.Deps[Before], "umount.target") {
		t.Errorf("nfs.mount is a network mount, but deps are %v", u.Deps)
	}
	if u := l.Load("manual.mount"); len(u.Deps[Before]) != 0 || len(u.Deps[Conflicts]) != 0 {
		t.Errorf("manual.mount has DefaultDependencies=no, but deps are %v", u.Deps)
	}
	if u := l.Load("svcsec.mount"); u.LoadState != LoadLoaded || len(u.Warnings) == 0 {
		t.Errorf("svcsec.mount: [Service] in a mount should be a warning: %s %v", u.LoadState, u.Warnings)
	}

	for name, msg := range map[string]string{
		"wrong.mount":  "does not match the unit name",
		"nowhat.mount": "no What=",
		"rel.mount":    "not an absolute path",
	} {
		u := l.Load(name)
		if u.LoadState != LoadBadSetting || !strings.Contains(u.LoadError, msg) {
			t.Errorf("%s: got %s %q, want bad-setting with %q", name, u.LoadState, u.LoadError, msg)
		}
	}
}

func FuzzEscapePath(f *testing.F) {
	for _, s := range []string{"/", "/var/lib", "/a-b/c d", "/.x", "/ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		e := EscapePath(p)
		if strings.ContainsAny(e, "/ ") {
			t.Fatalf("EscapePath(%q) = %q contains a slash or space", p, e)
		}
		if EscapePath(UnescapePath(e)) != e {
			t.Fatalf("EscapePath(%q) = %q does not round-trip (%q)", p, e, UnescapePath(e))
		}
	})
}
