package sysinit

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FstabEntry is one line of /etc/fstab (fstab(5)).
type FstabEntry struct {
	Spec    string // device, UUID=..., LABEL=...
	File    string // mount point
	VfsType string
	Options []string
	Freq    int
	Passno  int
}

// ParseFstab parses fstab(5): blank lines and '#' comments are skipped,
// fields are separated by blanks, and \040-style octal escapes (spaces in
// paths) are decoded. Lines with fewer than two fields are skipped; a
// missing type is "auto" and missing options are "defaults", as mount(8)
// does.
func ParseFstab(s string) []FstabEntry {
	var out []FstabEntry
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		e := FstabEntry{Spec: unescapeOctal(f[0]), File: unescapeOctal(f[1]), VfsType: "auto", Options: []string{"defaults"}}
		if len(f) > 2 {
			e.VfsType = f[2]
		}
		if len(f) > 3 {
			e.Options = strings.Split(unescapeOctal(f[3]), ",")
		}
		if len(f) > 4 {
			e.Freq, _ = strconv.Atoi(f[4])
		}
		if len(f) > 5 {
			e.Passno, _ = strconv.Atoi(f[5])
		}
		out = append(out, e)
	}
	return out
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountFlags maps mount(8) options to MS_* flags; a false "set" clears the
// flag (rw, suid, ...).
var mountFlags = []struct {
	name string
	flag uintptr
	set  bool
}{
	{"ro", unix.MS_RDONLY, true}, {"rw", unix.MS_RDONLY, false},
	{"nosuid", unix.MS_NOSUID, true}, {"suid", unix.MS_NOSUID, false},
	{"nodev", unix.MS_NODEV, true}, {"dev", unix.MS_NODEV, false},
	{"noexec", unix.MS_NOEXEC, true}, {"exec", unix.MS_NOEXEC, false},
	{"sync", unix.MS_SYNCHRONOUS, true}, {"async", unix.MS_SYNCHRONOUS, false},
	{"dirsync", unix.MS_DIRSYNC, true},
	{"noatime", unix.MS_NOATIME, true}, {"atime", unix.MS_NOATIME, false},
	{"nodiratime", unix.MS_NODIRATIME, true}, {"diratime", unix.MS_NODIRATIME, false},
	{"relatime", unix.MS_RELATIME, true}, {"norelatime", unix.MS_RELATIME, false},
	{"strictatime", unix.MS_STRICTATIME, true},
	{"lazytime", unix.MS_LAZYTIME, true}, {"nolazytime", unix.MS_LAZYTIME, false},
	{"silent", unix.MS_SILENT, true}, {"loud", unix.MS_SILENT, false},
}

// userspaceOption reports options that mean something to mount(8) or to the
// init system, never to the kernel.
func userspaceOption(o string) bool {
	switch o {
	case "", "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
		"nofail", "_netdev", "mand", "nomand":
		return true
	}
	return strings.HasPrefix(o, "x-") || strings.HasPrefix(o, "comment=") ||
		strings.HasPrefix(o, "X-mount.") || strings.HasPrefix(o, "x-systemd.")
}

// MountOptions turns fstab options into mount(2) flags and the data string
// passed to the filesystem. Later options win, as in mount(8).
func MountOptions(opts []string) (flags uintptr, data string) {
	var rest []string
next:
	for _, o := range opts {
		for _, f := range mountFlags {
			if o == f.name {
				if f.set {
					flags |= f.flag
				} else {
					flags &^= f.flag
				}
				continue next
			}
		}
		if !userspaceOption(o) {
			rest = append(rest, o)
		}
	}
	return flags, strings.Join(rest, ",")
}

// RootRemount is the early-boot remount of "/" with the options fstab gives
// it (rw unless fstab says ro): the kernel mounts the root read-only so that
// it can be checked, and init makes it writable.
func RootRemount(m Mounter, fstab []FstabEntry) Remount {
	r := Remount{Target: "/", M: m}
	for _, e := range fstab {
		if e.File == "/" {
			r.Flags, r.Data = MountOptions(e.Options)
		}
	}
	return r
}

// flagString renders flags the way /proc/mounts does, for logs.
func flagString(flags uintptr) string {
	var out []string
	for _, f := range mountFlags {
		if f.set && flags&f.flag != 0 {
			out = append(out, f.name)
		}
	}
	return strings.Join(out, ",")
}
