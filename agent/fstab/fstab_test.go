package fstab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"corral.io/corral/agent/unit"
)

const debianFstab = `# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=1234-abcd /               ext4    errors=remount-ro 0       1
/dev/vdb1       /var/lib        ext4    defaults,noatime 0 2
LABEL=data      /srv/my\040data xfs     nofail,x-systemd.device-timeout=5s 0 2
tmpfs           /tmp            tmpfs   nosuid,nodev,size=64m
server:/export  /mnt/nfs        nfs4    _netdev,rw
/dev/vdc        /mnt/manual     ext4    noauto
/dev/vda2       none            swap    sw 0 0
proc            /proc           proc    defaults
bad line
/dev/vdd        /var/lib        ext4    defaults
/dev/vde        /x ext4 defaults zero 0
`

func TestParse(t *testing.T) {
	es, errs := Parse(strings.NewReader(debianFstab))
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "line 12") || !strings.Contains(errs[1].Error(), "line 14") {
		t.Errorf("errors = %v, want line 12 (fields) and line 14 (dump)", errs)
	}
	want := []Entry{
		{Spec: "UUID=1234-abcd", File: "/", VfsType: "ext4", MntOps: "errors=remount-ro", PassNo: 1, Line: 4},
		{Spec: "/dev/vdb1", File: "/var/lib", VfsType: "ext4", MntOps: "defaults,noatime", PassNo: 2, Line: 5},
		{Spec: "LABEL=data", File: "/srv/my data", VfsType: "xfs", MntOps: "nofail,x-systemd.device-timeout=5s", PassNo: 2, Line: 6},
		{Spec: "tmpfs", File: "/tmp", VfsType: "tmpfs", MntOps: "nosuid,nodev,size=64m", Line: 7},
		{Spec: "server:/export", File: "/mnt/nfs", VfsType: "nfs4", MntOps: "_netdev,rw", Line: 8},
		{Spec: "/dev/vdc", File: "/mnt/manual", VfsType: "ext4", MntOps: "noauto", Line: 9},
		{Spec: "/dev/vda2", File: "none", VfsType: "swap", MntOps: "sw", Line: 10},
		{Spec: "proc", File: "/proc", VfsType: "proc", MntOps: "defaults", Line: 11},
		{Spec: "/dev/vdd", File: "/var/lib", VfsType: "ext4", MntOps: "defaults", Line: 13},
	}
	if !slices.Equal(es, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", es, want)
	}
}

func TestEntry(t *testing.T) {
	tests := []struct {
		e        Entry
		name     string
		what     string
		network  bool
		skip     bool
		contains []string
		lacks    []string
	}{
		{e: Entry{Spec: "UUID=1234", File: "/", VfsType: "ext4", MntOps: "errors=remount-ro"},
			name: "-.mount", what: "/dev/disk/by-uuid/1234",
			contains: []string{"Where=/\n", "Type=ext4\n", "Options=errors=remount-ro\n", "Before=local-fs.target\n", "After=local-fs-pre.target\n", "DefaultDependencies=no\n"}},
		{e: Entry{Spec: "/dev/vdb", File: "/var/lib/docker", VfsType: "ext4", MntOps: "defaults"},
			name: "var-lib-docker.mount", what: "/dev/vdb",
			contains: []string{"Requires=-.mount\n", "Requires=var.mount\n", "After=var.mount\n"}, lacks: []string{"Requires=srv.mount"}},
		{e: Entry{Spec: "LABEL=my data", File: "/srv/a-b", VfsType: "auto", MntOps: "nofail,x-systemd.automount"},
			name: `srv-a\x2db.mount`, what: `/dev/disk/by-label/my\x20data`,
			contains: []string{"Options=defaults\n"}, lacks: []string{"Type=", "Before=local-fs.target", "x-systemd"}},
		{e: Entry{Spec: "srv:/x", File: "/mnt/nfs", VfsType: "nfs", MntOps: "rw"},
			name: "mnt-nfs.mount", what: "srv:/x", network: true,
			contains: []string{"Before=remote-fs.target\n", "After=remote-fs-pre.target\n", "Wants=network-online.target\n"}, lacks: []string{"local-fs"}},
		{e: Entry{Spec: "/dev/sdb", File: "/data", VfsType: "ext4", MntOps: "_netdev"},
			name: "data.mount", what: "/dev/sdb", network: true, contains: []string{"remote-fs.target"}},
		{e: Entry{Spec: "tmpfs", File: "/run/x%y", VfsType: "tmpfs", MntOps: "mode=1777"},
			name: `run-x\x25y.mount`, what: "tmpfs", contains: []string{"Where=/run/x%%y\n"}},
		{e: Entry{Spec: "/dev/sdb", File: "none", VfsType: "swap", MntOps: "sw"}, skip: true},
		{e: Entry{Spec: "x", File: "relative", VfsType: "ext4"}, skip: true},
		{e: Entry{Spec: "x", File: "/a\nWhere=/b", VfsType: "ext4"}, skip: true},
	}
	mounts := []string{"/", "/var", "/var/lib/docker", "/srv"}
	for _, tt := range tests {
		if got := tt.e.Skip() != ""; got != tt.skip {
			t.Errorf("%+v: Skip=%q, want skip=%v", tt.e, tt.e.Skip(), tt.skip)
		}
		if tt.skip {
			continue
		}
		if got := tt.e.UnitName(); got != tt.name {
			t.Errorf("%s: UnitName = %q, want %q", tt.e.File, got, tt.name)
		}
		if got := tt.e.What(); got != tt.what {
			t.Errorf("%s: What = %q, want %q", tt.e.File, got, tt.what)
		}
		if got := tt.e.Network(); got != tt.network {
			t.Errorf("%s: Network = %v", tt.e.File, got)
		}
		text := tt.e.Unit("/etc/fstab", mounts)
		for _, c := range tt.contains {
			if !strings.Contains(text, c) {
				t.Errorf("%s: unit lacks %q:\n%s", tt.e.File, c, text)
			}
		}
		for _, c := range tt.lacks {
			if strings.Contains(text, c) {
				t.Errorf("%s: unit has %q:\n%s", tt.e.File, c, text)
			}
		}
		// The unit parser must agree with what the generator meant.
		u := unit.NewLoader(t.TempDir()).ParseString(tt.e.UnitName(), text)
		if u.LoadState != unit.LoadLoaded || u.Mount == nil || u.Mount.Where != tt.e.File || u.Mount.What != tt.what {
			t.Errorf("%s: parsed back as %s %q %+v", tt.e.File, u.LoadState, u.LoadError, u.Mount)
		}
	}
}

func TestGenerate(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/fstab"), []byte(debianFstab), 0o644)
	// A stale unit from an earlier run must disappear.
	os.MkdirAll(filepath.Join(root, GeneratorDir), 0o755)
	os.WriteFile(filepath.Join(root, GeneratorDir, "stale.mount"), nil, 0o644)

	units, problems, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-.mount", "var-lib.mount", `srv-my\x20data.mount`, "tmp.mount", "mnt-nfs.mount", "mnt-manual.mount", "proc.mount"}
	if !slices.Equal(units, want) {
		t.Errorf("units = %q, want %q", units, want)
	}
	// two parse errors, swap, and the second /var/lib
	if len(problems) != 4 {
		t.Errorf("problems = %v, want 4", problems)
	}
	dir := filepath.Join(root, GeneratorDir)
	if _, err := os.Stat(filepath.Join(dir, "stale.mount")); !os.IsNotExist(err) {
		t.Errorf("stale.mount survived: %v", err)
	}
	links := map[string]bool{
		"local-fs.target.requires/-.mount":           true,
		"local-fs.target.requires/var-lib.mount":     true,
		"local-fs.target.requires/tmp.mount":         true,
		"local-fs.target.requires/proc.mount":        true,
		`local-fs.target.wants/srv-my\x20data.mount`: true,
		"remote-fs.target.requires/mnt-nfs.mount":    true,
		"local-fs.target.requires/mnt-manual.mount":  false, // noauto
	}
	for l, exists := range links {
		target, err := os.Readlink(filepath.Join(dir, l))
		if exists && (err != nil || target != "../"+filepath.Base(l)) {
			t.Errorf("%s → %q, %v", l, target, err)
		}
		if !exists && err == nil {
			t.Errorf("%s exists", l)
		}
	}

	// The loader sees them through the generator directory, with
	// local-fs.target requiring the auto mounts.
	l := &unit.Loader{Dirs: []string{dir}, Host: unit.NewHost(root)}
	lt := l.Load("local-fs.target")
	for _, n := range []string{"-.mount", "var-lib.mount", "tmp.mount"} {
		if !slices.Contains(lt.Deps[unit.Requires], n) {
			t.Errorf("local-fs.target Requires=%v lacks %s", lt.Deps[unit.Requires], n)
		}
		if u := l.Load(n); u.LoadState != unit.LoadLoaded {
			t.Errorf("%s: %s %s", n, u.LoadState, u.LoadError)
		}
	}

	// No fstab: nothing to do, no error.
	if units, _, err := Generate(t.TempDir()); err != nil || len(units) != 0 {
		t.Errorf("no fstab: %v %v", units, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(debianFstab)
	f.Add(`/dev/x /a\040b ext4 defaults 0 0`)
	f.Add(`\ \\ \7 \777 \0401`)
	f.Add(`x /a\012b ext4`)
	f.Fuzz(func(t *testing.T, s string) {
		es, _ := Parse(strings.NewReader(s))
		for _, e := range es {
			if e.Skip() != "" {
				continue
			}
			name := e.UnitName()
			if !strings.HasSuffix(name, ".mount") || strings.Contains(name, "/") {
				t.Fatalf("bad unit name %q for %q", name, e.File)
			}
			// Whatever fstab says, the unit must parse back to the same
			// mount point (or be refused), never to another path.
			u := unit.NewLoader(t.TempDir()).ParseString(name, e.Unit("/etc/fstab", nil))
			if u.LoadState == unit.LoadLoaded && u.Mount.Where != e.File {
				t.Fatalf("%q: unit Where=%q, want %q\n%s", s, u.Mount.Where, e.File, e.Unit("/etc/fstab", nil))
			}
		}
	})
}
