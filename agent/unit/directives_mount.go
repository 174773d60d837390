package unit

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// mountDirectives is [Mount] (systemd.mount(5)).
var mountDirectives = func() map[string]directive {
	k := func(u *Unit) *Mount { return u.Mount }
	mbool := func(get func(*Mount) *bool) directive {
		return boolean(func(u *Unit) *bool { return get(k(u)) })
	}
	return map[string]directive{
		"What": str(func(u *Unit) *string { return &k(u).What }),
		"Where": {h: func(a *applier, v string) error {
			if !strings.HasPrefix(v, "/") {
				return &badSettingError{fmt.Sprintf("Where=%q is not an absolute path", v)}
			}
			a.u.Mount.Where = path.Clean(v)
			return nil
		}},
		"Type":          str(func(u *Unit) *string { return &k(u).Type }),
		"Options":       str(func(u *Unit) *string { return &k(u).Options }),
		"SloppyOptions": mbool(func(m *Mount) *bool { return &m.SloppyOptions }),
		"LazyUnmount":   mbool(func(m *Mount) *bool { return &m.LazyUnmount }),
		"ForceUnmount":  mbool(func(m *Mount) *bool { return &m.ForceUnmount }),
		"ReadWriteOnly": mbool(func(m *Mount) *bool { return &m.ReadWriteOnly }),
		"DirectoryMode": {h: func(a *applier, v string) error {
			md, err := parseMode(v)
			if err == nil {
				a.u.Mount.DirectoryMode = md
			}
			return err
		}},
		"TimeoutSec": duration(func(u *Unit) *time.Duration { return &k(u).TimeoutSec }, 0),
	}
}()

// finalizeMount checks what systemd checks: Where= is set (or implied by the
// name) and names the same path as the unit, and What= is set.
func (a *applier) finalizeMount() error {
	m := a.u.Mount
	want := strings.TrimSuffix(a.u.Name, ".mount")
	if m.Where == "" {
		m.Where = UnescapePath(want)
	}
	if EscapePath(m.Where) != want {
		return a.badAt("Mount.Where", fmt.Sprintf("Where=%s does not match the unit name %s (want %s.mount)", m.Where, a.u.Name, EscapePath(m.Where)))
	}
	if m.What == "" {
		return a.badAt("Mount.What", "mount unit has no What= setting")
	}
	return nil
}

// EscapePath is `systemd-escape --path`: the unit-name form of a path
// ("/" → "-", "/var/lib" → "var-lib", "/a-b" → "a\x2db"). Mount units must
// be named this way, so the fstab generator and the Where= check share it.
func EscapePath(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "-"
	}
	p = strings.TrimPrefix(p, "/")
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// UnescapePath reverses EscapePath ("-" alone is the root).
func UnescapePath(s string) string {
	if s == "-" || s == "" {
		return "/"
	}
	return "/" + Unescape(s)
}
