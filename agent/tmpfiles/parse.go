// Package tmpfiles is Corral's systemd-tmpfiles: it reads tmpfiles.d(5)
// configuration and creates, adjusts, removes and cleans the files a booting
// Debian system expects (/run/utmp, /var/log/wtmp, /tmp, /run/lock, the
// /var/run symlink, ...). It implements the line types a Debian boot uses —
// f f+ w d D e v q Q L L+ p c b z Z r R x X C — and skips the rest (ACLs,
// attributes, xattrs, credentials) with a warning.
//
// The package also holds the other files early boot must get right before
// any service starts: /etc/machine-id (EnsureMachineID) and the random seed
// (LoadRandomSeed/SaveRandomSeed).
package tmpfiles

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
	"time"
)

// Line is one tmpfiles.d entry.
type Line struct {
	Type       byte // 'f', 'd', 'L', ...
	Plus       bool // "+": replace/truncate (f+, L+, C+, ...)
	BootOnly   bool // "!": only with Options.Boot
	IgnoreErr  bool // "-": creation errors are not failures
	Credential bool // "^": argument names a credential (unsupported)
	Base64     bool // "~": argument is base64 (unsupported)

	Path       string
	Mode       uint32
	HasMode    bool
	ModeMasked bool // "~": mode masked by the existing file's bits
	ModeOnNew  bool // ":": only applied when the file is created
	User       string
	Group      string
	UserOnNew  bool
	GroupOnNew bool
	Age        time.Duration // 0 = no cleaning
	HasAge     bool
	Arg        string

	File   string // source file, for messages
	LineNo int
}

func (l Line) String() string { return fmt.Sprintf("%s:%d", l.File, l.LineNo) }

// known lists the types Corral understands (acted on or deliberately
// ignored); anything else is a parse error, like systemd-tmpfiles.
const known = "fFwdDevqQLpcbCxXrRzZtThHaA"

// Specifiers are the values of tmpfiles.d's %-specifiers.
type Specifiers struct {
	MachineID, BootID, Hostname, KernelRelease string
}

func (s Specifiers) expand(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 >= len(v) {
			return "", fmt.Errorf("trailing %% in %q", v)
		}
		i++
		switch v[i] {
		case '%':
			b.WriteByte('%')
		case 'm':
			b.WriteString(s.MachineID)
		case 'b':
			b.WriteString(s.BootID)
		case 'H', 'l':
			b.WriteString(s.Hostname)
		case 'v':
			b.WriteString(s.KernelRelease)
		case 't':
			b.WriteString("/run")
		case 'S':
			b.WriteString("/var/lib")
		case 'C':
			b.WriteString("/var/cache")
		case 'L':
			b.WriteString("/var/log")
		case 'T':
			b.WriteString("/tmp")
		case 'V':
			b.WriteString("/var/tmp")
		case 'h':
			b.WriteString("/root")
		case 'u', 'g':
			b.WriteString("root")
		case 'U', 'G':
			b.WriteString("0")
		default:
			return "", fmt.Errorf("unknown specifier %%%c in %q", v[i], v)
		}
	}
	return b.String(), nil
}

// Parse reads one tmpfiles.d file. Bad lines are reported and skipped; the
// good ones are returned in order.
func Parse(r io.Reader, file string, spec Specifiers) ([]Line, []error) {
	var out []Line
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		l, err := parseLine(text, spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", file, n, err))
			continue
		}
		l.File, l.LineNo = file, n
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", file, err))
	}
	return out, errs
}

// fields splits a line into at most 7 fields; the 7th (argument) keeps its
// inner whitespace, and fields may be double-quoted.
func fields(s string) ([]string, error) {
	var out []string
	for len(out) < 6 {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return out, nil
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote")
			}
			out = append(out, s[1:end+1])
			s = s[end+2:]
			continue
		}
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return append(out, s), nil
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	s = strings.TrimLeft(s, " \t")
	if s != "" {
		if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			s = s[1 : len(s)-1]
		}
		out = append(out, s)
	}
	return out, nil
}

func parseLine(text string, spec Specifiers) (Line, error) {
	f, err := fields(text)
	if err != nil {
		return Line{}, err
	}
	if len(f) < 2 {
		return Line{}, fmt.Errorf("want a type and a path, got %q", text)
	}
	var l Line
	t := f[0]
	if t == "" || !strings.ContainsRune(known, rune(t[0])) {
		return Line{}, fmt.Errorf("unknown type %q", t)
	}
	l.Type = t[0]
	for _, c := range t[1:] {
		switch c {
		case '+':
			l.Plus = true
		case '!':
			l.BootOnly = true
		case '-':
			l.IgnoreErr = true
		case '^':
			l.Credential = true
		case '~':
			l.Base64 = true
		case '=':
			// remove a non-matching file first: treated as '+'
			l.Plus = true
		default:
			return Line{}, fmt.Errorf("unknown modifier %q in type %q", c, t)
		}
	}
	if l.Path, err = spec.expand(f[1]); err != nil {
		return Line{}, err
	}
	if !strings.HasPrefix(l.Path, "/") {
		return Line{}, fmt.Errorf("path %q is not absolute", l.Path)
	}
	l.Path = path.Clean(l.Path)
	get := func(i int) string {
		if i < len(f) && f[i] != "-" {
			return f[i]
		}
		return ""
	}
	if m := get(2); m != "" {
		for len(m) > 0 && (m[0] == '~' || m[0] == ':') {
			if m[0] == '~' {
				l.ModeMasked = true
			} else {
				l.ModeOnNew = true
			}
			m = m[1:]
		}
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o7777 {
			return Line{}, fmt.Errorf("bad mode %q", f[2])
		}
		l.Mode, l.HasMode = uint32(v), true
	}
	if u := get(3); u != "" {
		l.User, l.UserOnNew = strings.TrimPrefix(u, ":"), strings.HasPrefix(u, ":")
	}
	if g := get(4); g != "" {
		l.Group, l.GroupOnNew = strings.TrimPrefix(g, ":"), strings.HasPrefix(g, ":")
	}
	if a := get(5); a != "" {
		a = strings.TrimPrefix(a, "~") // "keep the top-level entries": cleaning is shallow anyway
		d, err := parseAge(a)
		if err != nil {
			return Line{}, fmt.Errorf("bad age %q: %w", f[5], err)
		}
		l.Age, l.HasAge = d, true
	}
	if len(f) > 6 && f[6] != "-" {
		l.Arg = f[6]
		if slices.Contains([]byte("LCrRxX"), l.Type) || l.Type == 'L' {
			if l.Arg, err = spec.expand(l.Arg); err != nil {
				return Line{}, err
			}
		}
	}
	if l.Type == 'L' && l.Arg == "" {
		// systemd: the target defaults to /usr/share/factory/<path>
		l.Arg = filepath.Join("/usr/share/factory", l.Path)
	}
	if (l.Type == 'c' || l.Type == 'b') && l.Arg == "" {
		return Line{}, fmt.Errorf("device node %s needs major:minor", l.Path)
	}
	return l, nil
}

// parseAge reads systemd time spans like "10d", "1w", "30min", "0".
func parseAge(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		d      time.Duration
	}{
		{"usec", time.Microsecond}, {"us", time.Microsecond}, {"msec", time.Millisecond}, {"ms", time.Millisecond},
		{"seconds", time.Second}, {"second", time.Second}, {"sec", time.Second}, {"s", time.Second},
		{"minutes", time.Minute}, {"minute", time.Minute}, {"min", time.Minute}, {"m", time.Minute},
		{"hours", time.Hour}, {"hour", time.Hour}, {"hr", time.Hour}, {"h", time.Hour},
		{"days", 24 * time.Hour}, {"day", 24 * time.Hour}, {"d", 24 * time.Hour},
		{"weeks", 7 * 24 * time.Hour}, {"week", 7 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour},
	}
	var total time.Duration
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, fmt.Errorf("empty")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("want a number at %q", rest)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > 1<<30 {
			return 0, fmt.Errorf("number out of range")
		}
		rest = strings.TrimLeft(rest[i:], " ")
		unit := time.Second
		for _, u := range units {
			if strings.HasPrefix(rest, u.suffix) {
				unit, rest = u.d, rest[len(u.suffix):]
				break
			}
		}
		total += time.Duration(n) * unit
		rest = strings.TrimLeft(rest, " ")
	}
	return total, nil
}

// Dirs are the tmpfiles.d directories in priority order: a file in an
// earlier one replaces the same-named file in a later one.
var Dirs = []string{"etc/tmpfiles.d", "run/tmpfiles.d", "usr/local/lib/tmpfiles.d", "usr/lib/tmpfiles.d", "lib/tmpfiles.d"}

// Read loads every *.conf under root's tmpfiles.d directories, ordered by
// file name (the same as systemd), with /etc overriding /usr/lib.
func Read(root string, spec Specifiers) ([]Line, []error) {
	chosen := map[string]string{}
	for _, d := range Dirs {
		ents, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			if _, ok := chosen[e.Name()]; !ok {
				chosen[e.Name()] = filepath.Join(root, d, e.Name())
			}
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	slices.Sort(names)
	var lines []Line
	var errs []error
	for _, n := range names {
		p := chosen[n]
		// A symlink to /dev/null masks the file.
		if t, err := os.Readlink(p); err == nil && t == "/dev/null" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ls, es := Parse(f, strings.TrimPrefix(p, root), spec)
		f.Close()
		lines = append(lines, ls...)
		errs = append(errs, es...)
	}
	return lines, errs
}
