package unit

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Host describes the machine and manager that specifiers expand against.
// It is a value so that tests and the manager can pin every field; NewHost
// fills it from the running system.
type Host struct {
	Root          string // %t → Root/run, %S → Root/var/lib, %C, %L, %E, %T, %V likewise
	Hostname      string // %H, %l/%q (short)
	MachineID     string // %m
	BootID        string // %b
	KernelRelease string // %v
	Arch          string // %a
	OSRelease     map[string]string
	User, UID     string // %u %U: the manager's user (root)
	Group, GID    string // %g %G
	Home, Shell   string // %h %s
}

// NewHost reads host facts for specifiers from the running system, with
// directory specifiers placed under root.
func NewHost(root string) Host {
	h := Host{Root: root, User: "root", UID: "0", Group: "root", GID: "0", Home: "/root", Shell: "/bin/sh"}
	h.Hostname, _ = os.Hostname()
	h.MachineID = readTrim(filepath.Join(root, "etc/machine-id"))
	if h.MachineID == "" {
		h.MachineID = readTrim("/etc/machine-id")
	}
	h.BootID = strings.ReplaceAll(readTrim("/proc/sys/kernel/random/boot_id"), "-", "")
	h.KernelRelease = readTrim("/proc/sys/kernel/osrelease")
	h.Arch = map[string]string{"amd64": "x86-64", "arm64": "arm64", "386": "x86", "riscv64": "riscv64"}[runtime.GOARCH]
	h.OSRelease = parseOSRelease(filepath.Join(root, "etc/os-release"))
	if len(h.OSRelease) == 0 {
		h.OSRelease = parseOSRelease("/etc/os-release")
	}
	return h
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func parseOSRelease(path string) map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			m[k] = strings.Trim(v, `"'`)
		}
	}
	return m
}

// specCtx is what one unit's specifiers expand against.
type specCtx struct {
	host     *Host
	name     string // unit name, e.g. "getty@tty1.service"
	fragment string // %y
}

func (c *specCtx) root(p string) string { return filepath.Join("/", c.host.Root, p) }

// expand replaces %-specifiers in s. Unknown specifiers are left in place
// and reported, because dropping the assignment would hide a typo.
func (c *specCtx) expand(s string) (string, []string) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	var warns []string
	prefix, instance, suffix := SplitName(c.name)
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			warns = append(warns, "trailing '%' in value")
			b.WriteByte('%')
			continue
		}
		i++
		var v string
		switch s[i] {
		case '%':
			v = "%"
		case 'n':
			v = c.name
		case 'N':
			v = strings.TrimSuffix(c.name, "."+suffix)
		case 'p':
			v = prefix
		case 'P':
			v = Unescape(prefix)
		case 'i':
			v = instance
		case 'I':
			v = Unescape(instance)
		case 'j':
			v = prefix[strings.LastIndexByte(prefix, '-')+1:]
		case 'J':
			v = Unescape(prefix[strings.LastIndexByte(prefix, '-')+1:])
		case 'f':
			if instance != "" {
				v = "/" + strings.TrimPrefix(Unescape(instance), "/")
			} else {
				v = "/" + strings.TrimPrefix(Unescape(prefix), "/")
			}
		case 't':
			v = c.root("run")
		case 'S':
			v = c.root("var/lib")
		case 'C':
			v = c.root("var/cache")
		case 'L':
			v = c.root("var/log")
		case 'E':
			v = c.root("etc")
		case 'T':
			v = c.root("tmp")
		case 'V':
			v = c.root("var/tmp")
		case 'h':
			v = c.host.Home
		case 's':
			v = c.host.Shell
		case 'u':
			v = c.host.User
		case 'U':
			v = c.host.UID
		case 'g':
			v = c.host.Group
		case 'G':
			v = c.host.GID
		case 'H':
			v = c.host.Hostname
		case 'l', 'q':
			v, _, _ = strings.Cut(c.host.Hostname, ".")
		case 'm':
			v = c.host.MachineID
		case 'b':
			v = c.host.BootID
		case 'v':
			v = c.host.KernelRelease
		case 'a':
			v = c.host.Arch
		case 'o':
			v = c.host.OSRelease["ID"]
		case 'w':
			v = c.host.OSRelease["VERSION_ID"]
		case 'W':
			v = c.host.OSRelease["VARIANT_ID"]
		case 'B':
			v = c.host.OSRelease["BUILD_ID"]
		case 'M':
			v = c.host.OSRelease["IMAGE_ID"]
		case 'A':
			v = c.host.OSRelease["IMAGE_VERSION"]
		case 'y':
			v = c.fragment
		case 'Y':
			v = filepath.Dir(c.fragment)
		case 'd':
			v = c.root("run/credentials/" + c.name)
		default:
			warns = append(warns, fmt.Sprintf("unknown specifier %%%c left in place", s[i]))
			v = "%" + string(s[i])
		}
		b.WriteString(v)
	}
	return b.String(), warns
}

// SplitName splits "foo@bar.service" into ("foo", "bar", "service").
func SplitName(name string) (prefix, instance, suffix string) {
	base := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		base, suffix = name[:i], name[i+1:]
	}
	prefix, instance, _ = strings.Cut(base, "@")
	return prefix, instance, suffix
}

// Unescape reverses systemd-escape: "-" becomes "/" and "\xNN" a byte.
func Unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '-':
			b.WriteByte('/')
		case s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x':
			var v byte
			if _, err := fmt.Sscanf(s[i+2:i+4], "%02x", &v); err == nil {
				b.WriteByte(v)
				i += 3
				continue
			}
			b.WriteByte(s[i])
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// TemplateOf returns "foo@.service" for "foo@bar.service", or "" when name
// is not an instance.
func TemplateOf(name string) string {
	prefix, instance, suffix := SplitName(name)
	if instance == "" || !strings.Contains(name, "@") {
		return ""
	}
	return prefix + "@." + suffix
}

// IsTemplate reports whether name is a bare template ("foo@.service").
func IsTemplate(name string) bool {
	_, instance, _ := SplitName(name)
	return strings.Contains(name, "@") && instance == ""
}

// ValidName reports whether name is a syntactically valid unit name with a
// known type suffix.
func ValidName(name string) bool {
	if TypeOf(name) == "" || len(name) > 255 {
		return false
	}
	prefix, _, _ := SplitName(name)
	if prefix == "" || strings.Count(name, "@") > 1 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_.\\@", c) >= 0) {
			return false
		}
	}
	return true
}
