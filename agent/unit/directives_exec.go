package unit

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// execOf returns the systemd.exec(5) settings of a service or socket.
func execOf(u *Unit) *Exec {
	switch {
	case u.Service != nil:
		return &u.Service.Exec
	case u.Socket != nil:
		return &u.Socket.Exec
	}
	return &Exec{}
}

// resOf returns the resource-control settings of a service, socket or slice.
func resOf(u *Unit) *Resources {
	switch {
	case u.Service != nil:
		return &u.Service.Resources
	case u.Socket != nil:
		return &u.Socket.Resources
	case u.Slice != nil:
		return &u.Slice.Resources
	}
	return &Resources{}
}

func exStr(get func(*Exec) *string) directive {
	return str(func(u *Unit) *string { return get(execOf(u)) })
}

func exBool(get func(*Exec) *bool) directive {
	return boolean(func(u *Unit) *bool { return get(execOf(u)) })
}

func exWords(get func(*Exec) *[]string) directive {
	return words(func(u *Unit) *[]string { return get(execOf(u)) })
}

// absPath requires an absolute path: a relative one makes the unit
// unusable (bad-setting), because guessing a base directory could run the
// wrong binary or write to the wrong place.
func absPath(get func(*Exec) *string) directive {
	return directive{h: func(a *applier, v string) error {
		if v != "" && !filepath.IsAbs(v) {
			return &badSettingError{fmt.Sprintf("path %q is not absolute", v)}
		}
		*get(execOf(a.u)) = v
		return nil
	}}
}

func dirMode(get func(*Exec) *uint32) directive {
	return directive{h: func(a *applier, v string) error {
		m, err := parseMode(v)
		if err == nil {
			*get(execOf(a.u)) = m
		}
		return err
	}}
}

// relDirs is RuntimeDirectory= and friends: relative paths without "..".
func relDirs(get func(*Exec) *[]string) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" {
			*get(execOf(a.u)) = nil
			return nil
		}
		ws, err := splitWords(v)
		if err != nil {
			return err
		}
		for _, w := range ws {
			w, _, _ = strings.Cut(w, ":") // "dir:symlink" form: symlinks not supported
			if filepath.IsAbs(w) || strings.Contains("/"+w+"/", "/../") || w == "" {
				return &badSettingError{fmt.Sprintf("%q must be a relative path without \"..\"", w)}
			}
			*get(execOf(a.u)) = append(*get(execOf(a.u)), filepath.Clean(w))
		}
		return nil
	}}
}

func output(get func(*Exec) *Output) directive {
	return directive{h: func(a *applier, v string) error {
		kind, path, _ := strings.Cut(v, ":")
		switch kind {
		case "inherit", "null", "tty", "journal", "kmsg", "journal+console", "kmsg+console", "syslog", "syslog+console", "socket":
			*get(execOf(a.u)) = Output{Kind: kind}
		case "file", "append", "truncate":
			if !filepath.IsAbs(path) {
				return &badSettingError{fmt.Sprintf("%s: path %q is not absolute", kind, path)}
			}
			*get(execOf(a.u)) = Output{Kind: kind, Path: path}
		case "fd":
			return errors.New("fd: output is not supported")
		default:
			return fmt.Errorf("unknown output %q", v)
		}
		return nil
	}}
}

func resSize(get func(*Resources) *uint64) directive {
	return directive{raw: true, h: func(a *applier, v string) error {
		n, err := parseMemory(v)
		if err == nil {
			*get(resOf(a.u)) = n
		}
		return err
	}}
}

func resUint(get func(*Resources) *uint64, min, max uint64) directive {
	return directive{h: func(a *applier, v string) error {
		if v == "" {
			*get(resOf(a.u)) = 0
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < min || n > max {
			return fmt.Errorf("value %q out of range %d..%d", v, min, max)
		}
		*get(resOf(a.u)) = n
		return nil
	}}
}

// execDirectives is systemd.exec(5) plus systemd.resource-control(5): the
// part shared by [Service] and [Socket].
func execDirectives() map[string]directive {
	return map[string]directive{
		"User":                exStr(func(e *Exec) *string { return &e.User }),
		"Group":               exStr(func(e *Exec) *string { return &e.Group }),
		"SupplementaryGroups": exWords(func(e *Exec) *[]string { return &e.SupplementaryGroups }),
		"DynamicUser": {h: func(a *applier, v string) error {
			b, err := parseBool(v)
			if err == nil {
				execOf(a.u).DynamicUser = b
				if b {
					a.warn("DynamicUser=yes is approximated: the service runs as an unprivileged static user")
				}
			}
			return err
		}},
		"Environment": {raw: true, h: func(a *applier, v string) error {
			e := execOf(a.u)
			if v == "" {
				e.Environment = nil
				return nil
			}
			v, ws := a.spec.expand(v)
			for _, w := range ws {
				a.warn("Environment=: " + w)
			}
			words, err := splitWords(v)
			if err != nil {
				return err
			}
			for _, w := range words {
				k, _, ok := strings.Cut(w, "=")
				if !ok || k == "" || strings.ContainsAny(k, " \t") {
					a.warn(fmt.Sprintf("Environment=: invalid assignment %q; ignored", w))
					continue
				}
				e.Environment = append(e.Environment, w)
			}
			return nil
		}},
		"EnvironmentFile": {h: func(a *applier, v string) error {
			e := execOf(a.u)
			if v == "" {
				e.EnvironmentFiles = nil
				return nil
			}
			f := EnvFile{Path: v}
			if strings.HasPrefix(v, "-") {
				f = EnvFile{Path: v[1:], Optional: true}
			}
			if !filepath.IsAbs(f.Path) {
				return &badSettingError{fmt.Sprintf("path %q is not absolute", f.Path)}
			}
			e.EnvironmentFiles = append(e.EnvironmentFiles, f)
			return nil
		}},
		"UnsetEnvironment": exWords(func(e *Exec) *[]string { return &e.UnsetEnvironment }),
		"PassEnvironment":  exWords(func(e *Exec) *[]string { return &e.PassEnvironment }),
		"WorkingDirectory": {h: func(a *applier, v string) error {
			e := execOf(a.u)
			opt := strings.HasPrefix(v, "-")
			p := strings.TrimPrefix(v, "-")
			if p != "" && p != "~" && !filepath.IsAbs(p) {
				return &badSettingError{fmt.Sprintf("path %q is not absolute", p)}
			}
			e.WorkingDirectory, e.WorkingDirOptional = p, opt
			return nil
		}},
		"RootDirectory": absPath(func(e *Exec) *string { return &e.RootDirectory }),
		"UMask": {h: func(a *applier, v string) error {
			m, err := parseMode(v)
			if err == nil {
				execOf(a.u).UMask = &m
			}
			return err
		}},
		"Nice": {h: func(a *applier, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < -20 || n > 19 {
				return fmt.Errorf("nice value %q out of range -20..19", v)
			}
			execOf(a.u).Nice = &n
			return nil
		}},
		"OOMScoreAdjust": {h: func(a *applier, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < -1000 || n > 1000 {
				return fmt.Errorf("OOM score adjustment %q out of range -1000..1000", v)
			}
			execOf(a.u).OOMScoreAdjust = &n
			return nil
		}},
		"RuntimeDirectory":           relDirs(func(e *Exec) *[]string { return &e.RuntimeDirectory }),
		"StateDirectory":             relDirs(func(e *Exec) *[]string { return &e.StateDirectory }),
		"LogsDirectory":              relDirs(func(e *Exec) *[]string { return &e.LogsDirectory }),
		"CacheDirectory":             relDirs(func(e *Exec) *[]string { return &e.CacheDirectory }),
		"ConfigurationDirectory":     relDirs(func(e *Exec) *[]string { return &e.ConfigurationDirectory }),
		"RuntimeDirectoryMode":       dirMode(func(e *Exec) *uint32 { return &e.RuntimeDirectoryMode }),
		"StateDirectoryMode":         dirMode(func(e *Exec) *uint32 { return &e.StateDirectoryMode }),
		"LogsDirectoryMode":          dirMode(func(e *Exec) *uint32 { return &e.LogsDirectoryMode }),
		"CacheDirectoryMode":         {h: func(a *applier, v string) error { _, err := parseMode(v); return err }},
		"ConfigurationDirectoryMode": {h: func(a *applier, v string) error { _, err := parseMode(v); return err }},
		"RuntimeDirectoryPreserve": {h: func(a *applier, v string) error {
			if v != "restart" {
				b, err := parseBool(v)
				if err != nil {
					return err
				}
				v = map[bool]string{true: "yes", false: "no"}[b]
			}
			execOf(a.u).RuntimeDirectoryPreserve = v
			return nil
		}},
		"StandardInput": {h: func(a *applier, v string) error {
			switch v {
			case "null", "tty", "tty-force", "tty-fail", "socket":
				execOf(a.u).StandardInput = v
				return nil
			}
			return fmt.Errorf("unsupported standard input %q", v)
		}},
		"StandardOutput":   output(func(e *Exec) *Output { return &e.StandardOutput }),
		"StandardError":    output(func(e *Exec) *Output { return &e.StandardError }),
		"TTYPath":          absPath(func(e *Exec) *string { return &e.TTYPath }),
		"TTYReset":         exBool(func(e *Exec) *bool { return &e.TTYReset }),
		"TTYVHangup":       exBool(func(e *Exec) *bool { return &e.TTYVHangup }),
		"TTYVTDisallocate": exBool(func(e *Exec) *bool { return &e.TTYVTDisallocate }),
		"SyslogIdentifier": exStr(func(e *Exec) *string { return &e.SyslogIdentifier }),
		"NoNewPrivileges":  exBool(func(e *Exec) *bool { return &e.NoNewPrivileges }),
		"PrivateTmp":       exBool(func(e *Exec) *bool { return &e.PrivateTmp }),
		"PrivateDevices":   exBool(func(e *Exec) *bool { return &e.PrivateDevices }),
		"PrivateNetwork":   exBool(func(e *Exec) *bool { return &e.PrivateNetwork }),
		"ProtectSystem": {h: func(a *applier, v string) error {
			switch v {
			case "strict", "full":
			default:
				b, err := parseBool(v)
				if err != nil {
					return err
				}
				v = map[bool]string{true: "yes", false: "no"}[b]
			}
			execOf(a.u).ProtectSystem = v
			return nil
		}},
		"ProtectHome": {h: func(a *applier, v string) error {
			switch v {
			case "read-only", "tmpfs":
			default:
				b, err := parseBool(v)
				if err != nil {
					return err
				}
				v = map[bool]string{true: "yes", false: "no"}[b]
			}
			execOf(a.u).ProtectHome = v
			return nil
		}},
		"CapabilityBoundingSet": exWords(func(e *Exec) *[]string { return &e.CapabilityBoundingSet }),
		"AmbientCapabilities":   exWords(func(e *Exec) *[]string { return &e.AmbientCapabilities }),

		"CPUQuota": {raw: true, h: func(a *applier, v string) error {
			if v == "" {
				resOf(a.u).CPUQuotaPerSec = 0
				return nil
			}
			d, err := parseCPUQuota(v)
			if err == nil {
				resOf(a.u).CPUQuotaPerSec = d
			}
			return err
		}},
		"CPUQuotaPeriodSec": {h: func(a *applier, v string) error {
			d, _, err := parseTimespan(v, time.Second)
			if err == nil {
				resOf(a.u).CPUQuotaPeriod = d
			}
			return err
		}},
		"CPUWeight":     resUint(func(r *Resources) *uint64 { return &r.CPUWeight }, 1, 10000),
		"CPUShares":     resUint(func(r *Resources) *uint64 { return &r.CPUShares }, 2, 262144),
		"IOWeight":      resUint(func(r *Resources) *uint64 { return &r.IOWeight }, 1, 10000),
		"MemoryMax":     resSize(func(r *Resources) *uint64 { return &r.MemoryMax }),
		"MemoryLimit":   resSize(func(r *Resources) *uint64 { return &r.MemoryMax }),
		"MemoryHigh":    resSize(func(r *Resources) *uint64 { return &r.MemoryHigh }),
		"MemoryLow":     resSize(func(r *Resources) *uint64 { return &r.MemoryLow }),
		"MemoryMin":     resSize(func(r *Resources) *uint64 { return &r.MemoryMin }),
		"MemorySwapMax": resSize(func(r *Resources) *uint64 { return &r.MemorySwapMax }),
		"TasksMax": {raw: true, h: func(a *applier, v string) error {
			if f, ok := parsePercent(v); ok {
				resOf(a.u).TasksMax = uint64(f * float64(pidMax()))
				return nil
			}
			if v == "infinity" {
				resOf(a.u).TasksMax = math.MaxUint64
				return nil
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return fmt.Errorf("invalid tasks limit %q", v)
			}
			resOf(a.u).TasksMax = n
			return nil
		}},
		"AllowedCPUs":        str(func(u *Unit) *string { return &resOf(u).AllowedCPUs }),
		"AllowedMemoryNodes": str(func(u *Unit) *string { return &resOf(u).AllowedMemoryNodes }),
		"Delegate": {h: func(a *applier, v string) error {
			b, err := parseBool(v)
			if err != nil { // a controller list means "yes, these controllers"
				b = true
			}
			resOf(a.u).Delegate = b
			return nil
		}},
	}
}

// limitDirectives adds Limit*= to a table.
func addLimits(m map[string]directive) {
	for k := range rlimits {
		m[k] = directive{h: func(a *applier, v string) error {
			l, err := parseRlimit(a.cur.Key, v)
			if err != nil {
				return err
			}
			e := execOf(a.u)
			for i := range e.Limits { // a later assignment replaces the earlier one
				if e.Limits[i].Resource == l.Resource {
					e.Limits[i] = l
					return nil
				}
			}
			e.Limits = append(e.Limits, l)
			return nil
		}}
	}
}

func pidMax() uint64 {
	n, err := strconv.ParseUint(readTrim("/proc/sys/kernel/pid_max"), 10, 64)
	if err != nil {
		return 32768
	}
	return n
}

// sliceDirectives is [Slice]: resource control only.
var sliceDirectives = func() map[string]directive {
	m := map[string]directive{}
	for k, d := range execDirectives() {
		switch k {
		case "CPUQuota", "CPUQuotaPeriodSec", "CPUWeight", "CPUShares", "IOWeight", "MemoryMax", "MemoryLimit",
			"MemoryHigh", "MemoryLow", "MemoryMin", "MemorySwapMax", "TasksMax", "AllowedCPUs", "AllowedMemoryNodes", "Delegate":
			m[k] = d
		}
	}
	return m
}()
