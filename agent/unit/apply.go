package unit

import (
	"errors"
	"fmt"
	"strings"
)

// handler applies one directive's (specifier-expanded) value to the unit.
// An ordinary error turns into a warning and the assignment is ignored, as
// systemd does; *badSettingError and errUnterminatedQuote refuse the unit.
type handler func(a *applier, v string) error

// raw marks handlers that see the value before specifier expansion: those
// that expand later themselves, and those where systemd does not expand
// because '%' means percent (CPUQuota=, MemoryMax=, TasksMax=).
type directive struct {
	h   handler
	raw bool
}

// applier carries the unit being built through its fragment and drop-ins.
type applier struct {
	u    *Unit
	spec specCtx
	cur  assignment
	last map[string]assignment // Section.Key → last assignment, for semantic errors
	// execStartCount counts ExecStart= since the last reset, for the
	// "more than one ExecStart" check that systemd does per unit.
	execStartCount int
	successAction  bool   // SuccessAction= set: a service may then have no ExecStart=
	fatal          error  // first *SyntaxError or bad setting
	origin         string // fragment (or transient unit name) for errors with no line
}

func (a *applier) warn(msg string) {
	a.u.Warnings = append(a.u.Warnings, Warning{File: a.cur.File, Line: a.cur.Line, Msg: msg})
}

func (a *applier) where() string { return fmt.Sprintf("%s:%d", a.cur.File, a.cur.Line) }

// sections returns the directive table for a section of this unit's type,
// or nil when the section does not belong to the type.
func (a *applier) table(section string) map[string]directive {
	switch section {
	case "Unit":
		return unitDirectives
	case "Install":
		return installDirectives
	case "Service":
		if a.u.Type == TypeService {
			return serviceDirectives
		}
	case "Socket":
		if a.u.Type == TypeSocket {
			return socketDirectives
		}
	case "Slice":
		if a.u.Type == TypeSlice {
			return sliceDirectives
		}
	case "Mount":
		if a.u.Type == TypeMount {
			return mountDirectives
		}
	}
	return nil
}

// apply runs every assignment of one file through the directive tables.
func (a *applier) apply(as []assignment) {
	for _, x := range as {
		a.cur = x
		if strings.HasPrefix(x.Section, "X-") || strings.HasPrefix(x.Key, "X-") {
			continue // vendor extensions are explicitly allowed by systemd.unit(5)
		}
		t := a.table(x.Section)
		if t == nil {
			a.warn(fmt.Sprintf("[%s] %s= is not supported for %s units; ignored", x.Section, x.Key, a.u.Type))
			continue
		}
		d, ok := t[x.Key]
		if x.Section == "Unit" && x.Key == "SuccessAction" {
			a.successAction = x.Value != "" && x.Value != "none"
		}
		if !ok {
			if unsupported[x.Key] {
				a.warn(fmt.Sprintf("%s= is not supported by Corral; ignored", x.Key))
			} else {
				a.warn(fmt.Sprintf("unknown directive %s= in [%s]; ignored", x.Key, x.Section))
			}
			continue
		}
		v := x.Value
		if !d.raw {
			var ws []string
			v, ws = a.spec.expand(v)
			for _, w := range ws {
				a.warn(fmt.Sprintf("%s=: %s", x.Key, w))
			}
		}
		a.last[x.Section+"."+x.Key] = x
		if err := d.h(a, v); err != nil {
			var bad *badSettingError
			switch {
			case errors.Is(err, errUnterminatedQuote):
				a.fail(&SyntaxError{x.File, x.Line, fmt.Sprintf("%s=: %v", x.Key, err)})
			case errors.As(err, &bad):
				a.fail(fmt.Errorf("%s: %s=: %s", a.where(), x.Key, bad.msg))
			default:
				a.warn(fmt.Sprintf("invalid value for %s=: %v; ignored", x.Key, err))
			}
		}
	}
}

func (a *applier) fail(err error) {
	if a.fatal == nil {
		a.fatal = err
	}
}

// badAt formats a semantic error at the last assignment of key, or at the
// fragment when the key was never set.
func (a *applier) badAt(key, msg string) error {
	if x, ok := a.last[key]; ok {
		return fmt.Errorf("%s:%d: %s", x.File, x.Line, msg)
	}
	return fmt.Errorf("%s: %s", a.origin, msg)
}
