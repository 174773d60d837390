package sysinit

import "strings"

// Cmdline is what PID 1 takes from the kernel command line.
type Cmdline struct {
	Unit    string     // corral.unit= (or systemd.unit=): the default target override
	Rescue  string     // rescue.target or emergency.target from single/S/1/rescue/emergency/-b
	Debug   bool       // corral.debug: log at debug level (sysinit and core)
	Cgroup  CgroupMode // corral.cgroup=v1|v2 or systemd.unified_cgroup_hierarchy=0|1; 0 = kernel's choice
	OnFatal string     // corral.onfatal=reboot|poweroff|halt: what a fatal error in PID 1 ends in
}

// Target is the unit the core starts first: an explicit corral.unit= wins,
// then single/emergency, else "" (the core's default.target).
func (c Cmdline) Target() string {
	if c.Unit != "" {
		return c.Unit
	}
	return c.Rescue
}

// ParseCmdline parses /proc/cmdline. Values may be double-quoted
// (corral.unit="a b"), as the kernel allows; unknown words are ignored
// because the line belongs to the kernel and to every other program too.
func ParseCmdline(s string) Cmdline {
	var c Cmdline
	var sdUnit string
	var sdCgroup CgroupMode
	for _, w := range splitCmdline(s) {
		k, v, hasV := strings.Cut(w, "=")
		switch k {
		case "corral.unit":
			c.Unit = v
		case "systemd.unit":
			sdUnit = v
		case "corral.debug":
			c.Debug = !hasV || parseBool(v, true)
		case "corral.cgroup":
			switch v {
			case "v1", "1":
				c.Cgroup = CgroupV1
			case "v2", "2":
				c.Cgroup = CgroupV2
			}
		case "systemd.unified_cgroup_hierarchy":
			sdCgroup = CgroupV1
			if parseBool(v, true) {
				sdCgroup = CgroupV2
			}
		case "corral.onfatal":
			switch v {
			case "reboot", "poweroff", "halt":
				c.OnFatal = v
			}
		case "single", "S", "s", "1", "rescue":
			if !hasV {
				c.Rescue = "rescue.target"
			}
		case "emergency", "-b":
			if !hasV {
				c.Rescue = "emergency.target"
			}
		}
	}
	// Our own keys win over systemd's, whatever their order.
	if c.Unit == "" {
		c.Unit = sdUnit
	}
	if c.Cgroup == 0 {
		c.Cgroup = sdCgroup
	}
	return c
}

// parseBool accepts systemd's boolean spellings; an empty value is def.
func parseBool(v string, def bool) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	case "0", "no", "n", "false", "f", "off":
		return false
	}
	return def
}

// splitCmdline splits on blanks outside double quotes and drops the quotes.
func splitCmdline(s string) []string {
	var out []string
	var b strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			in = true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}
