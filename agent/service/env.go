package service

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"corral.io/corral/agent/reaper"
	"corral.io/corral/agent/unit"
)

// defaultPath is the PATH systemd gives services.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// envList is an ordered KEY=VALUE list where a later Set wins.
type envList struct {
	keys []string
	vals map[string]string
}

func (e *envList) set(k, v string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

func (e *envList) setKV(kv string) {
	if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
		e.set(k, v)
	}
}

// unset handles UnsetEnvironment=: "VAR" drops any value, "VAR=VALUE" only
// that exact assignment.
func (e *envList) unset(spec string) {
	k, v, exact := strings.Cut(spec, "=")
	cur, ok := e.vals[k]
	if !ok || (exact && cur != v) {
		return
	}
	delete(e.vals, k)
	for i, x := range e.keys {
		if x == k {
			e.keys = append(e.keys[:i], e.keys[i+1:]...)
			break
		}
	}
}

func (e *envList) list() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// environment builds a command's environment in systemd's order: manager
// defaults, then what the service manager computes, then Environment=, then
// EnvironmentFile=, minus UnsetEnvironment=.
func (s *Service) environment(kind string, main bool, nfds int, fdNames []string) ([]string, error) {
	svc := s.svc()
	var e envList
	e.set("PATH", defaultPath)
	if s.invocation != "" {
		e.set("INVOCATION_ID", s.invocation)
	}
	if s.notifyAccess() != unit.NotifyNone && s.d.NotifySocket != "" {
		e.set("NOTIFY_SOCKET", s.d.NotifySocket)
	}
	if main && nfds > 0 {
		e.set("LISTEN_FDS", strconv.Itoa(nfds))
		e.set("LISTEN_FDNAMES", strings.Join(fdNames, ":"))
	}
	if main {
		if d := s.watchdogUsec(); d > 0 {
			e.set("WATCHDOG_USEC", strconv.FormatInt(d.Microseconds(), 10))
		}
	}
	if svc.User != "" {
		if u, err := lookupUser(svc.User); err == nil {
			e.set("HOME", u.home)
			e.set("USER", u.name)
			e.set("LOGNAME", u.name)
			e.set("SHELL", u.shell)
		} else {
			return nil, fmt.Errorf("unit %s: User=%s: %w", s.u.Name, svc.User, err)
		}
	}
	if term := termFor(&svc.Exec); term != "" {
		e.set("TERM", term)
	}
	for _, d := range s.directories() {
		if len(d.names) == 0 {
			continue
		}
		var paths []string
		for _, n := range d.names {
			paths = append(paths, filepath.Join(d.base, n))
		}
		e.set(d.env, strings.Join(paths, ":"))
	}
	switch kind {
	case "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost":
		if s.st.MainPID > 0 {
			e.set("MAINPID", strconv.Itoa(s.st.MainPID))
		}
	}
	if kind == "ExecStop" || kind == "ExecStopPost" {
		e.set("SERVICE_RESULT", string(s.st.Result))
		if x := s.mainExit; x != nil {
			code, status := exitEnv(*x)
			e.set("EXIT_CODE", code)
			e.set("EXIT_STATUS", status)
		}
	}
	for _, k := range svc.PassEnvironment {
		if v, ok := os.LookupEnv(k); ok {
			e.set(k, v)
		}
	}
	for _, kv := range svc.Environment {
		e.setKV(kv)
	}
	for _, f := range svc.EnvironmentFiles {
		kvs, err := readEnvFile(f.Path)
		if err != nil {
			if f.Optional && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("unit %s: EnvironmentFile=%s: %w", s.u.Name, f.Path, err)
		}
		for _, kv := range kvs {
			e.setKV(kv)
		}
	}
	for _, u := range svc.UnsetEnvironment {
		e.unset(u)
	}
	return e.list(), nil
}

// exitEnv gives $EXIT_CODE and $EXIT_STATUS for ExecStop/ExecStopPost.
func exitEnv(x reaper.Exit) (string, string) {
	if sig := x.Signal(); sig != 0 {
		if x.Status.CoreDump() {
			return "dumped", sigName(sig)
		}
		return "killed", sigName(sig)
	}
	return "exited", strconv.Itoa(x.Code())
}

func sigName(sig syscall.Signal) string { return reaper.SignalName(sig) }

// notifyAccess is NotifyAccess= with systemd's defaults: main for Type=notify
// and for units with a watchdog.
func (s *Service) notifyAccess() unit.NotifyAccess {
	svc := s.svc()
	a := svc.NotifyAccess
	if (a == "" || a == unit.NotifyNone) && (svc.Type == unit.Notify || svc.WatchdogSec > 0) {
		return unit.NotifyMain
	}
	if a == "" {
		return unit.NotifyNone
	}
	return a
}

// expandArgs substitutes $VAR (a whole word, split on whitespace, dropped
// when unset) and ${VAR} (anywhere, not split) as systemd does; "$$" is a
// literal "$".
func expandArgs(args []string, env map[string]string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if len(a) > 1 && a[0] == '$' && a[1] != '{' && a[1] != '$' {
			if v, ok := env[a[1:]]; ok {
				out = append(out, strings.Fields(v)...)
			}
			continue
		}
		out = append(out, expandBraces(a, env))
	}
	return out
}

func expandBraces(a string, env map[string]string) string {
	if !strings.Contains(a, "$") {
		return a
	}
	var b strings.Builder
	for i := 0; i < len(a); i++ {
		c := a[i]
		if c != '$' || i+1 >= len(a) {
			b.WriteByte(c)
			continue
		}
		switch a[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(a[i+2:], '}')
			if end < 0 {
				b.WriteString(a[i:])
				return b.String()
			}
			expr := a[i+2 : i+2+end]
			b.WriteString(expandExpr(expr, env))
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// expandExpr handles VAR, VAR:-default and VAR:+alternate.
func expandExpr(expr string, env map[string]string) string {
	if k, def, ok := strings.Cut(expr, ":-"); ok {
		if v := env[k]; v != "" {
			return v
		}
		return def
	}
	if k, alt, ok := strings.Cut(expr, ":+"); ok {
		if env[k] != "" {
			return alt
		}
		return ""
	}
	return env[expr]
}

// readEnvFile parses an EnvironmentFile=: KEY=VALUE lines, '#' and ';'
// comments, single quotes (literal), double quotes (backslash escapes),
// backslash-newline continuations. Lines without '=' are ignored, as
// systemd does.
func readEnvFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseEnvFile(data), nil
}

func parseEnvFile(data []byte) []string {
	// Join continuation lines first (outside single quotes is good enough).
	data = bytes.ReplaceAll(data, []byte("\\\n"), nil)
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var pending string
	for sc.Scan() {
		line := sc.Text()
		if pending != "" {
			line = pending + "\n" + line
			pending = ""
		}
		t := strings.TrimLeft(line, " \t")
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		val, complete := parseEnvValue(strings.TrimLeft(v, " \t"))
		if !complete {
			pending = line // a quoted value spanning lines
			continue
		}
		out = append(out, k+"="+val)
	}
	return out
}

// parseEnvValue unquotes one value; complete is false when a quote is still
// open at the end of the line.
func parseEnvValue(v string) (string, bool) {
	var b strings.Builder
	var quote byte
	trailing := 0 // unquoted trailing whitespace to trim
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
				continue
			}
			b.WriteByte(c)
		case quote == '"':
			if c == '"' {
				quote = 0
				continue
			}
			if c == '\\' && i+1 < len(v) && strings.IndexByte("\"\\`$", v[i+1]) >= 0 {
				i++
				c = v[i]
			}
			b.WriteByte(c)
		default:
			switch {
			case c == '\'' || c == '"':
				quote = c
				trailing = 0
				continue
			case c == '\\' && i+1 < len(v):
				i++
				b.WriteByte(v[i])
				trailing = 0
				continue
			case c == '#' && (i == 0 || v[i-1] == ' ' || v[i-1] == '\t'):
				s := b.String()
				return s[:len(s)-trailing], true
			}
			if c == ' ' || c == '\t' {
				trailing++
			} else {
				trailing = 0
			}
			b.WriteByte(c)
		}
	}
	if quote != 0 {
		return "", false
	}
	s := b.String()
	return s[:len(s)-trailing], true
}

// dirSet is one of the *Directory= settings with its base and variable.
type dirSet struct {
	names []string
	base  string
	env   string
	mode  uint32
}

func (s *Service) directories() []dirSet {
	svc := s.svc()
	mode := func(m uint32) uint32 {
		if m == 0 {
			return 0o755
		}
		return m
	}
	root := s.d.Root
	if root == "" {
		root = "/"
	}
	return []dirSet{
		{svc.RuntimeDirectory, filepath.Join(root, "run"), "RUNTIME_DIRECTORY", mode(svc.RuntimeDirectoryMode)},
		{svc.StateDirectory, filepath.Join(root, "var/lib"), "STATE_DIRECTORY", mode(svc.StateDirectoryMode)},
		{svc.CacheDirectory, filepath.Join(root, "var/cache"), "CACHE_DIRECTORY", 0o755},
		{svc.LogsDirectory, filepath.Join(root, "var/log"), "LOGS_DIRECTORY", mode(svc.LogsDirectoryMode)},
		{svc.ConfigurationDirectory, filepath.Join(root, "etc"), "CONFIGURATION_DIRECTORY", 0o755},
	}
}

// prepare creates the unit's cgroup and its directories before the first
// command runs.
func (s *Service) prepare() error {
	svc := s.svc()
	if s.d.Cgroups != nil && s.d.Cgroup != "" {
		if err := s.d.Cgroups.Create(s.d.Cgroup); err != nil {
			return fmt.Errorf("create cgroup %s: %w", s.d.Cgroup, err)
		}
		if err := s.d.Cgroups.Apply(s.d.Cgroup, svc.Resources); err != nil {
			return fmt.Errorf("apply resources to cgroup %s: %w", s.d.Cgroup, err)
		}
	}
	uid, gid := -1, -1
	if svc.User != "" {
		u, err := lookupUser(svc.User)
		if err != nil {
			return fmt.Errorf("User=%s: %w", svc.User, err)
		}
		uid, gid = u.uid, u.gid
		if svc.Group != "" {
			g, err := lookupGroup(svc.Group)
			if err != nil {
				return fmt.Errorf("Group=%s: %w", svc.Group, err)
			}
			gid = g
		}
	}
	for _, d := range s.directories() {
		for _, n := range d.names {
			p := filepath.Join(d.base, n)
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("%s: %w", d.env, err)
			}
			if err := os.Chmod(p, os.FileMode(d.mode)); err != nil {
				return fmt.Errorf("%s: %w", d.env, err)
			}
			if uid >= 0 {
				if err := os.Chown(p, uid, gid); err != nil {
					return fmt.Errorf("%s: %w", d.env, err)
				}
			}
		}
	}
	return nil
}

// termFor is $TERM for a unit on a terminal, as systemd sets it (getty
// units pass it to agetty as "- $TERM"): the console inherits our own TERM
// when PID 1 is our parent (the kernel's choice), a virtual console is
// "linux", anything else "vt220". "" when the unit has no terminal.
func termFor(x *unit.Exec) string {
	onTTY := strings.HasPrefix(x.StandardInput, "tty") || x.StandardOutput.Kind == "tty" ||
		x.StandardError.Kind == "tty" || x.TTYPath != ""
	if !onTTY {
		return ""
	}
	path := x.TTYPath
	if path == "" {
		path = "/dev/console"
	}
	if path == "/dev/console" && os.Getppid() == 1 {
		if t := os.Getenv("TERM"); t != "" {
			return t
		}
	}
	if n, ok := strings.CutPrefix(path, "/dev/tty"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		return "linux"
	}
	return "vt220"
}
