package unit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// parseBool accepts systemd's boolean spellings (parse_boolean()).
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q", s)
}

var timeUnits = []struct {
	suffix string
	d      float64 // nanoseconds
}{
	// Longest suffixes first so that "msec" is not read as "m" + "sec".
	{"seconds", 1e9}, {"second", 1e9}, {"minutes", 60e9}, {"minute", 60e9},
	{"months", 2629800e9}, {"month", 2629800e9}, {"hours", 3600e9}, {"hour", 3600e9},
	{"weeks", 604800e9}, {"week", 604800e9}, {"years", 31557600e9}, {"year", 31557600e9},
	{"days", 86400e9}, {"day", 86400e9}, {"usec", 1e3}, {"msec", 1e6}, {"nsec", 1},
	{"sec", 1e9}, {"min", 60e9}, {"hr", 3600e9}, {"us", 1e3}, {"µs", 1e3}, {"μs", 1e3},
	{"ms", 1e6}, {"ns", 1}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9},
	{"w", 604800e9}, {"M", 2629800e9}, {"y", 31557600e9},
}

// parseTimespan parses a systemd time span ("5min 20s", "100ms", "1.5h",
// bare numbers in def units). inf reports "infinity".
func parseTimespan(s string, def time.Duration) (d time.Duration, inf bool, err error) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return 0, true, nil
	}
	if s == "" {
		return 0, false, errors.New("empty time span")
	}
	var total float64
	rest := s
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, false, fmt.Errorf("invalid time span %q", s)
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || num < 0 {
			return 0, false, fmt.Errorf("invalid time span %q", s)
		}
		rest = strings.TrimLeft(rest[i:], " \t")
		mult := float64(def)
		for _, u := range timeUnits {
			if strings.HasPrefix(rest, u.suffix) {
				after := rest[len(u.suffix):]
				if after != "" && !(after[0] == ' ' || after[0] == '\t' || after[0] >= '0' && after[0] <= '9' || after[0] == '.') {
					continue
				}
				mult = u.d
				rest = after
				break
			}
		}
		if rest != "" && !(rest[0] == ' ' || rest[0] == '\t' || rest[0] >= '0' && rest[0] <= '9' || rest[0] == '.') {
			return 0, false, fmt.Errorf("invalid time unit in %q", s)
		}
		total += num * mult
	}
	if total > math.MaxInt64 {
		return 0, true, nil
	}
	return time.Duration(total), false, nil
}

// parseSize parses a byte size with binary (1024) suffixes K, M, G, T, P, E
// (an optional trailing B is accepted). inf reports "infinity".
func parseSize(s string) (n uint64, inf bool, err error) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return 0, true, nil
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, false, fmt.Errorf("invalid size %q", s)
	}
	num, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, false, fmt.Errorf("invalid size %q", s)
	}
	mult := 1.0
	switch suf := strings.TrimSpace(s[i:]); strings.TrimSuffix(suf, "B") {
	case "":
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	case "P":
		mult = 1 << 50
	case "E":
		mult = 1 << 60
	default:
		return 0, false, fmt.Errorf("invalid size suffix in %q", s)
	}
	v := num * mult
	if v >= math.MaxUint64 {
		return 0, true, nil
	}
	return uint64(v), false, nil
}

// parsePercent parses "N%" (also permille "N‰"), returning a fraction.
func parsePercent(s string) (float64, bool) {
	var div float64
	switch {
	case strings.HasSuffix(s, "%"):
		s, div = strings.TrimSuffix(s, "%"), 100
	case strings.HasSuffix(s, "‰"):
		s, div = strings.TrimSuffix(s, "‰"), 1000
	default:
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v / div, true
}

// physicalMemory is used for Memory*=N% which systemd resolves against RAM.
func physicalMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// parseMemory parses Memory*= values: size, percentage of RAM, or infinity
// (returned as math.MaxUint64 so that "explicitly unlimited" differs from unset).
func parseMemory(s string) (uint64, error) {
	if f, ok := parsePercent(s); ok {
		return uint64(f * float64(physicalMemory())), nil
	}
	n, inf, err := parseSize(s)
	if inf {
		return math.MaxUint64, nil
	}
	return n, err
}

// parseSignal accepts "SIGTERM", "TERM", "SIGRTMIN+3" or a number.
func parseSignal(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal number %q", s)
		}
		return n, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN"); ok {
		off := 0
		if rest != "" {
			v, err := strconv.Atoi(strings.TrimPrefix(rest, "+"))
			if err != nil || rest[0] != '+' {
				return 0, fmt.Errorf("invalid signal %q", s)
			}
			off = v
		}
		if n := 34 + off; n <= 64 {
			return n, nil
		}
		return 0, fmt.Errorf("invalid signal %q", s)
	}
	if n := unix.SignalNum(name); n != 0 {
		return int(n), nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}

// exitStatusNames are the symbolic exit statuses systemd accepts in
// SuccessExitStatus= and friends: the LSB and BSD (sysexits.h) sets and
// systemd's own EXIT_* codes, written with or without their prefix.
var exitStatusNames = map[string]int{
	"SUCCESS": 0, "FAILURE": 1, "INVALIDARGUMENT": 2, "NOTIMPLEMENTED": 3, "NOPERMISSION": 4,
	"NOTINSTALLED": 5, "NOTCONFIGURED": 6, "NOTRUNNING": 7,
	"USAGE": 64, "DATAERR": 65, "NOINPUT": 66, "NOUSER": 67, "NOHOST": 68, "UNAVAILABLE": 69,
	"SOFTWARE": 70, "OSERR": 71, "OSFILE": 72, "CANTCREAT": 73, "IOERR": 74, "TEMPFAIL": 75,
	"PROTOCOL": 76, "NOPERM": 77, "CONFIG": 78,
	"CHDIR": 200, "NICE": 201, "FDS": 202, "EXEC": 203, "MEMORY": 204, "LIMITS": 205,
	"OOM_ADJUST": 206, "SIGNAL_MASK": 207, "STDIN": 208, "STDOUT": 209, "CHROOT": 210,
	"IOPRIO": 211, "TIMERSLACK": 212, "SECUREBITS": 213, "SETSCHEDULER": 214, "CPUAFFINITY": 215,
	"GROUP": 216, "USER": 217, "CAPABILITIES": 218, "CGROUP": 219, "SETSID": 220, "CONFIRM": 221,
	"STDERR": 222, "PAM": 224, "NETWORK": 225, "NAMESPACE": 226, "NO_NEW_PRIVILEGES": 227,
	"SECCOMP": 228, "SELINUX_CONTEXT": 229, "PERSONALITY": 230, "APPARMOR_PROFILE": 231,
	"ADDRESS_FAMILIES": 232, "RUNTIME_DIRECTORY": 233, "CHOWN": 235, "SMACK_PROCESS_LABEL": 236,
	"KEYRING": 237, "STATE_DIRECTORY": 238, "CACHE_DIRECTORY": 239, "LOGS_DIRECTORY": 240,
	"CONFIGURATION_DIRECTORY": 241, "NUMA_POLICY": 242, "CREDENTIALS": 243, "BPF": 245,
}

func exitStatusByName(w string) (int, bool) {
	w = strings.TrimPrefix(strings.TrimPrefix(w, "EXIT_"), "EX_")
	n, ok := exitStatusNames[w]
	return n, ok
}

// parseExitStatusSet adds the space-separated codes and signals of s to set.
func parseExitStatusSet(s string, set *ExitStatusSet) error {
	words, err := splitWords(s)
	if err != nil {
		return err
	}
	var add ExitStatusSet
	for _, w := range words {
		if n, err := strconv.Atoi(w); err == nil {
			if n < 0 || n > 255 {
				return fmt.Errorf("exit status %d out of range", n)
			}
			add.Codes = append(add.Codes, n)
			continue
		}
		if n, ok := exitStatusByName(w); ok {
			add.Codes = append(add.Codes, n)
			continue
		}
		sig, err := parseSignal(w)
		if err != nil {
			return fmt.Errorf("invalid exit status or signal %q", w)
		}
		add.Signals = append(add.Signals, sig)
	}
	set.Codes = append(set.Codes, add.Codes...)
	set.Signals = append(set.Signals, add.Signals...)
	return nil
}

// parseMode parses an octal file mode or umask.
func parseMode(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 07777 {
		return 0, fmt.Errorf("invalid octal mode %q", s)
	}
	return uint32(v), nil
}

// rlimits maps Limit*= names to resources and how their values are read.
var rlimits = map[string]struct {
	res  int
	kind byte // 'n' number, 's' size, 't' seconds, 'u' microseconds, 'i' nice
}{
	"LimitCPU": {unix.RLIMIT_CPU, 't'}, "LimitFSIZE": {unix.RLIMIT_FSIZE, 's'},
	"LimitDATA": {unix.RLIMIT_DATA, 's'}, "LimitSTACK": {unix.RLIMIT_STACK, 's'},
	"LimitCORE": {unix.RLIMIT_CORE, 's'}, "LimitRSS": {unix.RLIMIT_RSS, 's'},
	"LimitNOFILE": {unix.RLIMIT_NOFILE, 'n'}, "LimitAS": {unix.RLIMIT_AS, 's'},
	"LimitNPROC": {unix.RLIMIT_NPROC, 'n'}, "LimitMEMLOCK": {unix.RLIMIT_MEMLOCK, 's'},
	"LimitLOCKS": {unix.RLIMIT_LOCKS, 'n'}, "LimitSIGPENDING": {unix.RLIMIT_SIGPENDING, 'n'},
	"LimitMSGQUEUE": {unix.RLIMIT_MSGQUEUE, 's'}, "LimitNICE": {unix.RLIMIT_NICE, 'i'},
	"LimitRTPRIO": {unix.RLIMIT_RTPRIO, 'n'}, "LimitRTTIME": {unix.RLIMIT_RTTIME, 'u'},
}

// parseRlimit parses "soft[:hard]" for the Limit*= directive key.
func parseRlimit(key, s string) (Rlimit, error) {
	spec, ok := rlimits[key]
	if !ok {
		return Rlimit{}, fmt.Errorf("unknown limit %s", key)
	}
	one := func(v string) (uint64, error) {
		if v == "infinity" {
			return unix.RLIM_INFINITY, nil
		}
		switch spec.kind {
		case 's':
			n, inf, err := parseSize(v)
			if inf {
				return unix.RLIM_INFINITY, nil
			}
			return n, err
		case 't', 'u':
			def := time.Second
			if spec.kind == 'u' {
				def = time.Microsecond
			}
			d, inf, err := parseTimespan(v, def)
			if inf {
				return unix.RLIM_INFINITY, nil
			}
			if spec.kind == 't' {
				return uint64((d + time.Second - 1) / time.Second), err
			}
			return uint64(d / time.Microsecond), err
		case 'i':
			if n, err := strconv.Atoi(v); err == nil && (strings.HasPrefix(v, "-") || strings.HasPrefix(v, "+")) {
				if n < -20 || n > 19 {
					return 0, fmt.Errorf("nice value %d out of range", n)
				}
				return uint64(20 - n), nil // rlimit scale: 20 - nice
			}
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid limit %q", v)
		}
		return n, nil
	}
	soft, hard, two := strings.Cut(strings.TrimSpace(s), ":")
	cur, err := one(soft)
	if err != nil {
		return Rlimit{}, err
	}
	max := cur
	if two {
		if max, err = one(hard); err != nil {
			return Rlimit{}, err
		}
		if cur > max {
			return Rlimit{}, fmt.Errorf("soft limit above hard limit in %q", s)
		}
	}
	return Rlimit{Resource: spec.res, Cur: cur, Max: max}, nil
}

// parseCPUQuota parses CPUQuota=N% into CPU time per second (200% = 2s).
func parseCPUQuota(s string) (time.Duration, error) {
	if !strings.HasSuffix(s, "%") {
		return 0, fmt.Errorf("CPUQuota= must be a percentage: %q", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("invalid CPU quota %q", s)
	}
	return time.Duration(v / 100 * float64(time.Second)), nil
}
