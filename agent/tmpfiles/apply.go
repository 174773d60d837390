package tmpfiles

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options say which passes to run, like systemd-tmpfiles' flags.
type Options struct {
	Root            string // everything is relative to it ("/" in production)
	Create          bool   // --create
	Remove          bool   // --remove: r, R, and D's contents
	Clean           bool   // --clean: age-based removal under d/D/C lines
	Boot            bool   // --boot: also the lines marked "!"
	ExcludePrefixes []string
	Now             time.Time // for Clean; zero = time.Now()
	Log             *slog.Logger
}

// Apply runs the lines. Errors are collected per line (a failing line does
// not stop the others); lines with the "-" modifier only log theirs.
func Apply(lines []Line, opt Options) []error {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Root == "" {
		opt.Root = "/"
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	a := &applier{opt: opt, ids: newIDs(opt.Root), warned: map[byte]bool{}}
	for _, l := range lines {
		if (l.Type == 'x' || l.Type == 'X') && !a.excluded(l.Path) {
			a.excludes = append(a.excludes, l)
		}
	}
	var errs []error
	for _, l := range lines {
		if l.BootOnly && !opt.Boot || a.excluded(l.Path) {
			continue
		}
		if err := a.line(l); err != nil {
			err = fmt.Errorf("%s: %s %s: %w", l, string(l.Type), l.Path, err)
			if l.IgnoreErr {
				opt.Log.Debug("tmpfiles", "err", err)
				continue
			}
			errs = append(errs, err)
		}
	}
	return errs
}

type applier struct {
	opt      Options
	ids      *ids
	excludes []Line
	warned   map[byte]bool
}

func (a *applier) excluded(p string) bool {
	for _, x := range a.opt.ExcludePrefixes {
		if p == x || strings.HasPrefix(p, strings.TrimSuffix(x, "/")+"/") {
			return true
		}
	}
	return false
}

func (a *applier) abs(p string) string { return filepath.Join(a.opt.Root, p) }

// glob expands a path pattern for the types that accept globs.
func (a *applier) glob(p string) ([]string, error) {
	if !strings.ContainsAny(p, "*?[") {
		return []string{a.abs(p)}, nil
	}
	return filepath.Glob(a.abs(p))
}

func (a *applier) line(l Line) error {
	if l.Credential || l.Base64 {
		a.warnOnce(l, "credentials and base64 arguments are not supported; skipped")
		return nil
	}
	switch l.Type {
	case 'f', 'F':
		if !a.opt.Create {
			return nil
		}
		return a.file(l, l.Plus || l.Type == 'F')
	case 'w':
		if !a.opt.Create {
			return nil
		}
		return a.forGlob(l, func(p string) error {
			flags := os.O_WRONLY | os.O_TRUNC
			if l.Plus {
				flags = os.O_WRONLY | os.O_APPEND
			}
			f, err := os.OpenFile(p, flags, 0)
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			_, err = io.WriteString(f, unescape(l.Arg))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		})
	case 'd', 'D', 'v', 'q', 'Q':
		if a.opt.Create {
			if err := a.dir(l); err != nil {
				return err
			}
		}
		if l.Type == 'D' && a.opt.Remove {
			if err := removeContents(a.abs(l.Path)); err != nil {
				return err
			}
		}
		if a.opt.Clean && l.HasAge && l.Age > 0 {
			return a.clean(a.abs(l.Path), l.Age)
		}
		return nil
	case 'e':
		if a.opt.Create {
			if err := a.forGlob(l, func(p string) error { return a.adjust(l, p, false, false) }); err != nil {
				return err
			}
		}
		if a.opt.Clean && l.HasAge && l.Age > 0 {
			return a.forGlob(l, func(p string) error { return a.clean(p, l.Age) })
		}
		return nil
	case 'L':
		if !a.opt.Create {
			return nil
		}
		return a.symlink(l)
	case 'p', 'c', 'b':
		if !a.opt.Create {
			return nil
		}
		return a.node(l)
	case 'C':
		if !a.opt.Create {
			return nil
		}
		return a.copyTree(l)
	case 'z', 'Z':
		if !a.opt.Create {
			return nil
		}
		return a.forGlob(l, func(p string) error {
			if l.Type == 'z' {
				return a.adjust(l, p, false, false)
			}
			return filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.Type()&fs.ModeSymlink != 0 {
					return nil
				}
				return a.adjust(l, q, false, false)
			})
		})
	case 'r', 'R':
		if !a.opt.Remove {
			return nil
		}
		return a.forGlob(l, func(p string) error {
			if a.isExcluded(p) {
				return nil
			}
			if l.Type == 'R' {
				return os.RemoveAll(p)
			}
			err := os.Remove(p)
			if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) || os.IsNotExist(err) {
				return nil // r only removes empty directories
			}
			return err
		})
	case 'x', 'X':
		return nil // collected before the passes
	default: // t T h H a A: extended attributes, file attributes, ACLs
		a.warnOnce(l, "extended attributes, file attributes and ACLs are not supported; skipped")
		return nil
	}
}

func (a *applier) warnOnce(l Line, msg string) {
	if !a.warned[l.Type] {
		a.warned[l.Type] = true
		a.opt.Log.Info("tmpfiles: "+msg, "type", string(l.Type), "at", l.String())
	}
}

func (a *applier) forGlob(l Line, fn func(string) error) error {
	ps, err := a.glob(l.Path)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		if err := fn(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *applier) mkParents(p string) error {
	return os.MkdirAll(filepath.Dir(p), 0o755)
}

func (a *applier) file(l Line, truncate bool) error {
	p := a.abs(l.Path)
	if err := a.mkParents(p); err != nil {
		return err
	}
	mode := uint32(0o644)
	if l.HasMode {
		mode = l.Mode
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	f, err := os.OpenFile(p, flags, os.FileMode(mode&0o777))
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		if st, serr := os.Lstat(p); serr == nil && !st.Mode().IsRegular() {
			return fmt.Errorf("exists and is not a regular file")
		}
		if truncate {
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		} else {
			return a.adjust(l, p, false, true)
		}
	}
	if err != nil {
		return err
	}
	if l.Arg != "" && (created || truncate) {
		if _, err := io.WriteString(f, unescape(l.Arg)); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return a.adjust(l, p, created, true)
}

func (a *applier) dir(l Line) error {
	p := a.abs(l.Path)
	if err := a.mkParents(p); err != nil {
		return err
	}
	mode := uint32(0o755)
	if l.HasMode {
		mode = l.Mode
	}
	err := os.Mkdir(p, os.FileMode(mode&0o777))
	created := err == nil
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if st, err := os.Stat(p); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("exists and is not a directory")
	}
	if created && !l.HasMode {
		l.Mode, l.HasMode = 0o755, true
	}
	return a.adjust(l, p, created, true)
}

func (a *applier) symlink(l Line) error {
	p := a.abs(l.Path)
	if err := a.mkParents(p); err != nil {
		return err
	}
	if cur, err := os.Readlink(p); err == nil && cur == l.Arg {
		return nil
	}
	if _, err := os.Lstat(p); err == nil {
		if !l.Plus {
			return nil // exists, and we may not replace it
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return os.Symlink(l.Arg, p)
}

func (a *applier) node(l Line) error {
	p := a.abs(l.Path)
	if err := a.mkParents(p); err != nil {
		return err
	}
	mode := uint32(0o644)
	if l.HasMode {
		mode = l.Mode
	}
	var typ uint32
	var dev uint64
	switch l.Type {
	case 'p':
		typ = unix.S_IFIFO
	case 'c', 'b':
		typ = unix.S_IFCHR
		if l.Type == 'b' {
			typ = unix.S_IFBLK
		}
		maj, min, ok := strings.Cut(l.Arg, ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("bad device number %q", l.Arg)
		}
		dev = unix.Mkdev(uint32(ma), uint32(mi))
	}
	if l.Plus {
		os.Remove(p)
	}
	err := unix.Mknod(p, typ|mode&0o7777, int(dev))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.adjust(l, p, true, true)
}

func (a *applier) copyTree(l Line) error {
	dst := a.abs(l.Path)
	src := a.abs(l.Arg)
	if _, err := os.Lstat(dst); err == nil {
		return nil // C only copies when the destination does not exist
	}
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	if err := a.mkParents(dst); err != nil {
		return err
	}
	return os.CopyFS(dst, os.DirFS(src))
}

// adjust sets mode and ownership; created says the file was just made, for
// the ":" (only on creation) prefixes.
func (a *applier) adjust(l Line, p string, created, _ bool) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	if l.HasMode && (!l.ModeOnNew || created) {
		mode := l.Mode
		if l.ModeMasked && !created {
			// "~": a class (user, group, other) with no access bits on
			// the existing file gets none from the configured mode either.
			cur := uint32(st.Mode().Perm())
			for _, class := range []uint32{0o700, 0o070, 0o007} {
				if cur&class == 0 {
					mode &^= class
				}
			}
		}
		if err := unix.Chmod(p, mode); err != nil {
			return err
		}
	}
	uid, gid := -1, -1
	if l.User != "" && (!l.UserOnNew || created) {
		if uid, err = a.ids.user(l.User); err != nil {
			return err
		}
	}
	if l.Group != "" && (!l.GroupOnNew || created) {
		if gid, err = a.ids.group(l.Group); err != nil {
			return err
		}
	}
	if uid >= 0 || gid >= 0 {
		return os.Lchown(p, uid, gid)
	}
	return nil
}

func removeContents(dir string) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isExcluded reports whether an absolute path (under Root) matches an x
// (path and everything below) or X (path only) line.
func (a *applier) isExcluded(abs string) bool {
	rel := "/" + strings.TrimPrefix(strings.TrimPrefix(abs, a.opt.Root), "/")
	for _, x := range a.excludes {
		if ok, _ := filepath.Match(x.Path, rel); ok {
			return true
		}
		if x.Type == 'x' {
			for p := filepath.Dir(rel); p != "/" && p != "."; p = filepath.Dir(p) {
				if ok, _ := filepath.Match(x.Path, p); ok {
					return true
				}
			}
		}
	}
	return false
}

// clean removes what under dir has not been used (atime, mtime and ctime)
// for longer than age; directories go once they are empty and old. The
// top-level directory itself stays.
func (a *applier) clean(dir string, age time.Duration) error {
	cutoff := a.opt.Now.Add(-age)
	var walk func(string) (bool, error)
	walk = func(d string) (empty bool, err error) {
		ents, err := os.ReadDir(d)
		if err != nil {
			return false, err
		}
		left := 0
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			if a.isExcluded(p) {
				left++
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				continue
			}
			newest := max(st.Atim.Nano(), st.Mtim.Nano(), st.Ctim.Nano())
			if e.IsDir() {
				if sub, err := walk(p); err == nil && sub && time.Unix(0, max(st.Mtim.Nano(), st.Ctim.Nano())).Before(cutoff) {
					if os.Remove(p) == nil {
						continue
					}
				}
				left++
				continue
			}
			if time.Unix(0, newest).Before(cutoff) {
				if os.Remove(p) == nil {
					continue
				}
			}
			left++
		}
		return left == 0, nil
	}
	_, err := walk(dir)
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// unescape decodes C-style escapes in arguments (\n, \t, \\, \xNN).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if v, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`); err == nil {
		return v
	}
	return s
}

// ids resolves user and group names from the root's /etc/passwd and
// /etc/group (no NSS: early boot has no name service anyway).
type ids struct {
	root          string
	users, groups map[string]int
}

func newIDs(root string) *ids { return &ids{root: root} }

func readIDs(path string) map[string]int {
	m := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) >= 3 {
			if id, err := strconv.Atoi(fs[2]); err == nil {
				m[fs[0]] = id
			}
		}
	}
	return m
}

func (i *ids) user(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	if i.users == nil {
		i.users = readIDs(filepath.Join(i.root, "etc/passwd"))
	}
	if id, ok := i.users[name]; ok {
		return id, nil
	}
	return -1, fmt.Errorf("unknown user %q", name)
}

func (i *ids) group(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	if i.groups == nil {
		i.groups = readIDs(filepath.Join(i.root, "etc/group"))
	}
	if id, ok := i.groups[name]; ok {
		return id, nil
	}
	return -1, fmt.Errorf("unknown group %q", name)
}
