// Package fstab is Corral's systemd-fstab-generator: it turns /etc/fstab
// into .mount units so that mounting is ordinary unit work (ordering,
// failure, logs, status) instead of a script, and local-fs.target means what
// it means under systemd.
//
// Generate writes <root>/run/corral/generator/<name>.mount and links each
// unit into local-fs.target.requires/ (local-fs.target.wants/ for nofail;
// remote-fs.target for network filesystems). noauto entries get a unit but
// no link. Swap entries and "none" mount points are skipped. The root entry
// becomes -.mount, which the mount runtime treats as a remount of the
// already mounted root with fstab's options (what systemd-remount-fs does).
package fstab

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"corral.io/corral/agent/unit"
)

// Entry is one fstab(5) line.
type Entry struct {
	Spec    string // fs_spec: device, LABEL=, UUID=, server:/path, tmpfs...
	File    string // fs_file: mount point (cleaned), or "none"/"swap"
	VfsType string
	MntOps  string // "defaults" when empty
	Freq    int
	PassNo  int
	Line    int
}

// Parse reads fstab(5): whitespace-separated fields with \040-style octal
// escapes, # comments, and optional freq/passno. A malformed line is an
// error naming the line; the caller decides whether to skip it.
func Parse(r io.Reader) ([]Entry, []error) {
	var out []Entry
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || len(f) > 6 {
			errs = append(errs, fmt.Errorf("fstab line %d: want 3 to 6 fields, got %d", n, len(f)))
			continue
		}
		e := Entry{Spec: unoctal(f[0]), File: unoctal(f[1]), VfsType: f[2], MntOps: "defaults", Line: n}
		if len(f) > 3 {
			e.MntOps = unoctal(f[3])
		}
		var err error
		if len(f) > 4 {
			if e.Freq, err = strconv.Atoi(f[4]); err != nil {
				errs = append(errs, fmt.Errorf("fstab line %d: bad dump field %q", n, f[4]))
				continue
			}
		}
		if len(f) > 5 {
			if e.PassNo, err = strconv.Atoi(f[5]); err != nil {
				errs = append(errs, fmt.Errorf("fstab line %d: bad pass field %q", n, f[5]))
				continue
			}
		}
		if strings.HasPrefix(e.File, "/") {
			e.File = path.Clean(e.File)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("fstab: %w", err))
	}
	return out, errs
}

// unoctal decodes fstab's \NNN escapes (\040 is a space).
func unoctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			v, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 || s[0] > '3' {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// Options splits fs_mntops into its comma-separated options.
func (e Entry) Options() []string { return strings.Split(e.MntOps, ",") }

func (e Entry) has(opt string) bool { return slices.Contains(e.Options(), opt) }

// Skip reports why an entry produces no unit ("" if it does).
func (e Entry) Skip() string {
	switch {
	case e.VfsType == "swap":
		return "swap is not supported by Corral"
	case e.File == "none" || !strings.HasPrefix(e.File, "/"):
		return "mount point " + strconv.Quote(e.File) + " is not an absolute path"
	case e.VfsType == "ignore":
		return "type ignore"
	case strings.ContainsFunc(e.Spec+e.File+e.MntOps, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "control characters in the line" // would break the unit file
	}
	return ""
}

// Network reports whether the entry is a network mount (remote-fs.target).
func (e Entry) Network() bool { return e.has("_netdev") || unit.IsNetworkFS(e.VfsType) }

// UnitName is the entry's mount unit name ("-.mount", "var-lib.mount").
func (e Entry) UnitName() string { return unit.EscapePath(e.File) + ".mount" }

// What resolves LABEL=, UUID=, PARTUUID= and PARTLABEL= to the /dev/disk/by-*
// symlink that udev (or Corral's device manager) maintains, as systemd does.
func (e Entry) What() string {
	for _, p := range []struct{ prefix, dir string }{
		{"LABEL=", "by-label"}, {"UUID=", "by-uuid"}, {"PARTUUID=", "by-partuuid"}, {"PARTLABEL=", "by-partlabel"},
	} {
		if v, ok := strings.CutPrefix(e.Spec, p.prefix); ok {
			return "/dev/disk/" + p.dir + "/" + escapeDevName(strings.Trim(v, `"`))
		}
	}
	return e.Spec
}

// escapeDevName is udev's encoding of names in /dev/disk/by-*: "/" and
// unsafe bytes become \xNN.
func escapeDevName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == '\\' || c < 0x20 || c == ' ' {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// unitOptions drops the options that only the generator understands; the
// rest go to Options= (the mount runtime ignores the other userspace ones).
func (e Entry) unitOptions() string {
	var keep []string
	for _, o := range e.Options() {
		if o == "" || strings.HasPrefix(o, "x-systemd.") || o == "nofail" || o == "noauto" || o == "auto" {
			continue
		}
		keep = append(keep, o)
	}
	if len(keep) == 0 {
		return "defaults"
	}
	return strings.Join(keep, ",")
}

// Unit renders the entry's mount unit. mounts are the other entries' mount
// points: a mount requires and is ordered after the mounts of its parent
// directories that fstab also lists (systemd's RequiresMountsFor=).
func (e Entry) Unit(source string, mounts []string) string {
	var b strings.Builder
	target, pre := "local-fs.target", "local-fs-pre.target"
	if e.Network() {
		target, pre = "remote-fs.target", "remote-fs-pre.target"
	}
	fmt.Fprintf(&b, "# Generated by corral from %s line %d; do not edit.\n[Unit]\n", source, e.Line)
	fmt.Fprintf(&b, "Documentation=man:fstab(5)\nSourcePath=%s\n", source)
	// Explicit dependencies instead of the defaults, so the generated unit
	// says exactly what it is ordered against.
	b.WriteString("DefaultDependencies=no\n")
	fmt.Fprintf(&b, "After=%s\n", pre)
	if e.Network() {
		b.WriteString("After=network-online.target\nWants=network-online.target\n")
	}
	if !e.has("nofail") && !e.has("noauto") {
		fmt.Fprintf(&b, "Before=%s\n", target)
	}
	b.WriteString("Conflicts=umount.target\nBefore=umount.target\n")
	var parents []string
	for _, m := range mounts {
		if m != e.File && (m == "/" || strings.HasPrefix(e.File, m+"/")) {
			parents = append(parents, unit.EscapePath(m)+".mount")
		}
	}
	slices.Sort(parents)
	for _, p := range parents {
		fmt.Fprintf(&b, "Requires=%s\nAfter=%s\n", p, p)
	}
	fmt.Fprintf(&b, "\n[Mount]\nWhat=%s\nWhere=%s\n", quote(e.What()), quote(e.File))
	if e.VfsType != "" && e.VfsType != "auto" {
		fmt.Fprintf(&b, "Type=%s\n", e.VfsType)
	}
	fmt.Fprintf(&b, "Options=%s\n", quote(e.unitOptions()))
	return b.String()
}

// quote escapes what the unit-file parser would otherwise interpret: only
// specifiers (What=/Where=/Options= are not C-unescaped).
func quote(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// GeneratorDir is where Generate writes, relative to the root. The loader
// must search it after /etc and /run but before /lib (systemd's
// /run/systemd/generator has the same place).
const GeneratorDir = "run/corral/generator"

// Generate reads <root>/etc/fstab and writes the mount units and the
// local-fs.target/remote-fs.target links into <root>/run/corral/generator,
// replacing what an earlier run wrote. It returns the unit names written and
// the problems with individual lines (which do not stop the others). A
// missing fstab is not an error: there is nothing to mount.
func Generate(root string) (units []string, problems []error, err error) {
	src := filepath.Join(root, "etc/fstab")
	f, err := os.Open(src)
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fstab generator: %w", err)
	}
	entries, problems := Parse(f)
	f.Close()

	dir := filepath.Join(root, GeneratorDir)
	if err := os.RemoveAll(dir); err != nil {
		return nil, problems, fmt.Errorf("fstab generator: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, problems, fmt.Errorf("fstab generator: %w", err)
	}
	var keep []Entry
	var mounts []string
	seen := map[string]int{}
	for _, e := range entries {
		if why := e.Skip(); why != "" {
			problems = append(problems, fmt.Errorf("fstab line %d (%s): skipped: %s", e.Line, e.File, why))
			continue
		}
		if first, dup := seen[e.File]; dup {
			problems = append(problems, fmt.Errorf("fstab line %d: %s is already mounted by line %d; skipped", e.Line, e.File, first))
			continue
		}
		seen[e.File] = e.Line
		keep = append(keep, e)
		mounts = append(mounts, e.File)
	}
	for _, e := range keep {
		name := e.UnitName()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(e.Unit("/etc/fstab", mounts)), 0o644); err != nil {
			return units, problems, fmt.Errorf("fstab generator: %s: %w", name, err)
		}
		units = append(units, name)
		if e.has("noauto") {
			continue
		}
		target := "local-fs.target"
		if e.Network() {
			target = "remote-fs.target"
		}
		kind := ".requires"
		if e.has("nofail") {
			kind = ".wants"
		}
		link := filepath.Join(dir, target+kind)
		if err := os.MkdirAll(link, 0o755); err != nil {
			return units, problems, fmt.Errorf("fstab generator: %w", err)
		}
		if err := os.Symlink("../"+name, filepath.Join(link, name)); err != nil {
			return units, problems, fmt.Errorf("fstab generator: %s: %w", name, err)
		}
	}
	return units, problems, nil
}
