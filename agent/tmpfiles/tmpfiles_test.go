package tmpfiles

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var spec = Specifiers{MachineID: "0123456789abcdef0123456789abcdef", BootID: "b00t", Hostname: "h", KernelRelease: "6.1"}

func TestParse(t *testing.T) {
	text := `# comment
d /run/lock 1777 root root -
f+! /run/nologin 0644 - - - "System is booting up. Please come back later."
L+ /etc/mtab   -    -    -    -  ../proc/self/mounts
Z /run/log/journal/%m ~2750 root systemd-journal - -
D! /tmp/.X11-unix 1777 root root 10d
d- /var/cache/x :0700 :nobody - 1w2d
L /usr/share/foo
c! /dev/fuse 0666 - - - 10:229
x /tmp/systemd-private-%b-*
q /var 0755 - - -
bogus /x
d relative
c /dev/nonum
d /x 0999
d /x - - - 5fortnights
d /x%q
`
	ls, errs := Parse(strings.NewReader(text), "t.conf", spec)
	if len(errs) != 6 {
		t.Errorf("errors = %v, want 6", errs)
	}
	want := []Line{
		{Type: 'd', Path: "/run/lock", Mode: 0o1777, HasMode: true, User: "root", Group: "root"},
		{Type: 'f', Plus: true, BootOnly: true, Path: "/run/nologin", Mode: 0o644, HasMode: true, Arg: "System is booting up. Please come back later."},
		{Type: 'L', Plus: true, Path: "/etc/mtab", Arg: "../proc/self/mounts"},
		{Type: 'Z', Path: "/run/log/journal/0123456789abcdef0123456789abcdef", Mode: 0o2750, HasMode: true, ModeMasked: true, User: "root", Group: "systemd-journal"},
		{Type: 'D', BootOnly: true, Path: "/tmp/.X11-unix", Mode: 0o1777, HasMode: true, User: "root", Group: "root", Age: 10 * 24 * time.Hour, HasAge: true},
		{Type: 'd', IgnoreErr: true, Path: "/var/cache/x", Mode: 0o700, HasMode: true, ModeOnNew: true, User: "nobody", UserOnNew: true, Age: 9 * 24 * time.Hour, HasAge: true},
		{Type: 'L', Path: "/usr/share/foo", Arg: "/usr/share/factory/usr/share/foo"},
		{Type: 'c', BootOnly: true, Path: "/dev/fuse", Mode: 0o666, HasMode: true, Arg: "10:229"},
		{Type: 'x', Path: "/tmp/systemd-private-b00t-*"},
		{Type: 'q', Path: "/var", Mode: 0o755, HasMode: true},
	}
	if len(ls) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(ls), len(want), ls)
	}
	for i := range want {
		want[i].File, want[i].LineNo = "t.conf", ls[i].LineNo
		if ls[i] != want[i] {
			t.Errorf("line %d:\n got %#v\nwant %#v", i, ls[i], want[i])
		}
	}
}

func write(t *testing.T, root, p, s string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
	if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestApply(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/passwd", "root:x:0:0::/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\n")
	write(t, root, "etc/group", "root:x:0:\nutmp:x:43:\n")
	// Vendor config, overridden by /etc, masked by /dev/null.
	write(t, root, "usr/lib/tmpfiles.d/debian.conf", `
d /run/lock 1777 root root -
f+! /run/utmp 0664 root utmp -
f /var/log/wtmp 0664 root utmp -
f /etc/greeting 0600 daemon - - hello\nworld
L /var/run - - - - ../run
L+ /etc/mtab - - - - ../proc/self/mounts
D /tmp 1777 root root -
r! /tmp/stale-*
R! /tmp/old-tree
z /var/log/wtmp 0640 - - -
p /run/fifo 0600 - - -
w /etc/greeting - - - - replaced
C /etc/skelcopy - - - - /usr/share/skel
d /var/cache/clean - - - 1h
x /var/cache/clean/keep*
e /nonexistent - - - -
a+ /var/log/journal - - - - d:group:adm:r-x
`)
	write(t, root, "usr/lib/tmpfiles.d/masked.conf", "d /masked\n")
	os.MkdirAll(filepath.Join(root, "etc/tmpfiles.d"), 0o755)
	os.Symlink("/dev/null", filepath.Join(root, "etc/tmpfiles.d/masked.conf"))
	write(t, root, "usr/share/skel/.bashrc", "x")
	write(t, root, "tmp/stale-1", "")
	write(t, root, "tmp/old-tree/a/b", "")
	write(t, root, "tmp/leftover", "")
	os.Symlink("/somewhere/else", filepath.Join(root, "etc/mtab"))
	// ctime cannot be set back, so "now" is moved forward instead: files
	// written now are 3h old then, and "new" is touched into that future.
	now := time.Now().Add(3 * time.Hour)
	for _, f := range []string{"var/cache/clean/old", "var/cache/clean/keepme", "var/cache/clean/sub/old"} {
		write(t, root, f, "")
	}
	write(t, root, "var/cache/clean/new", "")
	os.Chtimes(filepath.Join(root, "var/cache/clean/new"), now, now)

	lines, errs := Read(root, spec)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if errs := Apply(lines, Options{Root: root, Create: true, Remove: true, Boot: true, Clean: true, Now: now}); len(errs) != 0 {
		t.Fatal(errs)
	}

	st := func(p string) os.FileInfo {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		return fi
	}
	owner := func(fi os.FileInfo) (uint32, uint32) {
		s := fi.Sys().(*syscall.Stat_t)
		return s.Uid, s.Gid
	}
	if fi := st("run/lock"); fi != nil && (!fi.IsDir() || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777) {
		t.Errorf("run/lock mode %v", fi.Mode())
	}
	if fi := st("run/utmp"); fi != nil {
		if u, g := owner(fi); u != 0 || g != 43 || fi.Mode().Perm() != 0o664 {
			t.Errorf("run/utmp %v %d:%d", fi.Mode(), u, g)
		}
	}
	if fi := st("var/log/wtmp"); fi != nil && fi.Mode().Perm() != 0o640 {
		t.Errorf("z did not adjust var/log/wtmp: %v", fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/greeting")); string(b) != "replaced" {
		t.Errorf("etc/greeting = %q", b)
	}
	if fi := st("etc/greeting"); fi != nil {
		if u, _ := owner(fi); u != 1 || fi.Mode().Perm() != 0o600 {
			t.Errorf("etc/greeting %v uid %d", fi.Mode(), u)
		}
	}
	for link, target := range map[string]string{"var/run": "../run", "etc/mtab": "../proc/self/mounts"} {
		if got, err := os.Readlink(filepath.Join(root, link)); got != target {
			t.Errorf("%s → %q %v, want %q", link, got, err, target)
		}
	}
	if fi := st("run/fifo"); fi != nil && fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("run/fifo is %v", fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/skelcopy/.bashrc")); string(b) != "x" {
		t.Errorf("C did not copy: %q", b)
	}
	for _, gone := range []string{"tmp/stale-1", "tmp/old-tree", "tmp/leftover", "masked", "var/cache/clean/old", "var/cache/clean/sub"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", gone, err)
		}
	}
	for _, kept := range []string{"var/cache/clean/keepme", "var/cache/clean/new", "tmp"} {
		st(kept)
	}

	// A second run changes nothing and fails nothing (idempotent), and
	// without Boot the "!" lines are left alone.
	os.Remove(filepath.Join(root, "run/utmp"))
	if errs := Apply(lines, Options{Root: root, Create: true}); len(errs) != 0 {
		t.Fatal(errs)
	}
	if _, err := os.Lstat(filepath.Join(root, "run/utmp")); !os.IsNotExist(err) {
		t.Errorf("f+! ran without Boot")
	}

	// Errors name the line; "-" lines are quiet.
	bad, _ := Parse(strings.NewReader("f /etc/greeting/x\nf- /etc/greeting/y\nd /x 0755 nosuchuser\n"), "bad.conf", spec)
	errs = Apply(bad, Options{Root: root, Create: true})
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "bad.conf:1") || !strings.Contains(errs[1].Error(), "nosuchuser") {
		t.Errorf("errors = %v", errs)
	}
}

func TestMachineID(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/machine-id", "")
	id, created, err := EnsureMachineID(root)
	if err != nil || !created || !validID(id) || id[12] != '4' {
		t.Fatalf("EnsureMachineID = %q %v %v", id, created, err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id"))
	if string(b) != id+"\n" {
		t.Errorf("file = %q", b)
	}
	again, created, err := EnsureMachineID(root)
	if err != nil || created || again != id {
		t.Errorf("second call = %q %v %v, want %q unchanged", again, created, err, id)
	}
	write(t, root, "etc/machine-id", "not-an-id\n")
	if other, created, _ := EnsureMachineID(root); !created || other == id {
		t.Errorf("malformed ID not replaced: %q", other)
	}
}

func TestRandomSeed(t *testing.T) {
	root := t.TempDir()
	// First boot: no seed yet; one is saved.
	if err := LoadRandomSeed(root); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, RandomSeedPath)
	first, err := os.ReadFile(p)
	if err != nil || len(first) != seedSize {
		t.Fatalf("seed after first load: %d bytes, %v", len(first), err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("seed mode %v", fi.Mode())
	}
	// Next boot: the seed is used once and replaced.
	if err := LoadRandomSeed(root); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(p)
	if string(second) == string(first) {
		t.Error("seed was not replaced after loading")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("d /run/lock 1777 root root -\nf+! /run/nologin 0644 - - - \"x y\"\n")
	f.Add("Z /run/log/journal/%m ~2750 root systemd-journal - -\nL+ /etc/mtab - - - - ../proc/self/mounts")
	f.Add("D! /tmp/.X11-unix 1777 root root 10d\nx /tmp/systemd-private-%b-*\nc /dev/fuse 0666 - - - 10:229")
	f.Fuzz(func(t *testing.T, s string) {
		ls, _ := Parse(strings.NewReader(s), "f.conf", spec)
		for _, l := range ls {
			if !strings.HasPrefix(l.Path, "/") || strings.Contains(l.Path, "/../") || strings.HasSuffix(l.Path, "/..") {
				t.Fatalf("path %q escapes or is relative", l.Path)
			}
			if l.HasMode && l.Mode > 0o7777 {
				t.Fatalf("mode %o", l.Mode)
			}
			if l.Age < 0 {
				t.Fatalf("negative age %v", l.Age)
			}
		}
	})
}

// TestDebianConfig runs bookworm's own tmpfiles.d (from the boot-test
// image) against an empty root: every line parses, and a boot-time
// create+remove leaves the files a Debian boot needs.
func TestDebianConfig(t *testing.T) {
	src, _ := filepath.Abs("testdata/bookworm")
	lines, errs := Read(src, spec)
	if len(errs) != 0 {
		t.Fatalf("bookworm's tmpfiles.d does not parse: %v", errs)
	}
	if len(lines) < 80 {
		t.Fatalf("only %d lines read", len(lines))
	}
	root := t.TempDir()
	write(t, root, "etc/passwd", "root:x:0:0::/root:/bin/sh\n")
	write(t, root, "etc/group", "root:x:0:\nutmp:x:43:\nsystemd-journal:x:101:\nadm:x:4:\naudio:x:29:\ndisk:x:6:\nkvm:x:104:\n")
	errs = Apply(lines, Options{Root: root, Create: true, Remove: true, Boot: true, ExcludePrefixes: []string{"/dev"}})
	for _, err := range errs {
		// Only the lines that need a running systemd's users may fail.
		if !strings.Contains(err.Error(), "unknown user") && !strings.Contains(err.Error(), "unknown group") {
			t.Error(err)
		}
	}
	for _, p := range []string{"run/utmp", "var/log/wtmp", "tmp", "run/lock", "var/lib/systemd", "run/nologin"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if got, _ := os.Readlink(filepath.Join(root, "var/run")); got != "../run" {
		t.Errorf("var/run → %q", got)
	}
}
