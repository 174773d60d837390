package apiserver

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corralv1 "corral.io/corral/api/corral/v1"
)

// Show implements corralv1.UnitServiceServer. Like systemctl show, a unit
// that does not exist is not an error: it is shown with LoadState=not-found.
func (s *Server) Show(ctx context.Context, req *corralv1.ShowRequest) (*corralv1.ShowResponse, error) {
	resp := &corralv1.ShowResponse{}
	for _, n := range req.GetNames() {
		d, err := s.m.UnitStatus(ctx, n)
		if errors.Is(err, ErrNotFound) {
			d = UnitDetail{UnitSummary: UnitSummary{Name: n, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}}
		} else if err != nil {
			return nil, err
		}
		up := &corralv1.UnitProperties{Name: n}
		for _, p := range selectProps(properties(d), req.GetProperties(), req.GetAll()) {
			up.Properties = append(up.Properties, &corralv1.Property{Key: p.Key, Value: p.Value})
		}
		resp.Units = append(resp.Units, up)
	}
	return resp, nil
}

// selectProps applies -p and --all: requested properties are always shown
// (even empty), in the order requested; otherwise empty values are dropped
// unless all is set.
func selectProps(props []Property, want []string, all bool) []Property {
	if len(want) > 0 {
		var out []Property
		for _, w := range want {
			for _, p := range props {
				if p.Key == w {
					out = append(out, p)
					break
				}
			}
		}
		return out
	}
	if all {
		return props
	}
	return slices.DeleteFunc(slices.Clone(props), func(p Property) bool { return p.Value == "" })
}

// properties renders d as systemd names its D-Bus properties, so that
// scripts written against `systemctl show` work unchanged.
func properties(d UnitDetail) []Property {
	p := []Property{
		{"Id", d.Name},
		{"Names", strings.Join(namesOf(d), " ")},
		{"Description", d.Description},
		{"LoadState", d.LoadState},
		{"ActiveState", d.ActiveState},
		{"SubState", d.SubState},
		{"Result", d.Result},
		{"LoadError", d.LoadError},
		{"FragmentPath", d.FragmentPath},
		{"DropInPaths", strings.Join(d.DropIns, " ")},
		{"UnitFileState", d.UnitFileState},
		{"MainPID", strconv.Itoa(d.MainPID)},
		{"ControlPID", strconv.Itoa(d.ControlPID)},
		{"ExecMainPID", strconv.Itoa(d.ExecMain.PID)},
		{"ExecMainCode", strconv.Itoa(cldCode(d.ExecMain.Code))},
		{"ExecMainStatus", strconv.Itoa(d.ExecMain.Status)},
		{"ExecMainStartTimestamp", timestamp(d.ExecMain.Start)},
		{"ExecMainExitTimestamp", timestamp(d.ExecMain.Exit)},
		{"StatusText", d.StatusText},
		{"NRestarts", strconv.Itoa(d.NRestarts)},
		{"ControlGroup", d.Cgroup},
		{"MemoryCurrent", usage(d.Memory.Valid, d.Memory.Current)},
		{"MemoryMax", limit(d.Memory.Max)},
		{"TasksCurrent", usage(d.Tasks.Valid, d.Tasks.Current)},
		{"TasksMax", limit(d.Tasks.Max)},
		{"CPUUsageNSec", usage(d.CPU.Valid, d.CPU.Current)},
		{"StateChangeTimestamp", timestamp(d.StateChange)},
		{"ActiveEnterTimestamp", timestamp(d.ActiveEnter)},
		{"ActiveExitTimestamp", timestamp(d.ActiveExit)},
		{"InactiveEnterTimestamp", timestamp(d.InactiveEnter)},
		{"InactiveExitTimestamp", timestamp(d.InactiveExit)},
	}
	if d.JobID != 0 {
		p = append(p, Property{"Job", strconv.FormatUint(d.JobID, 10) + " " + d.JobType})
	}
	kinds := make([]string, 0, len(d.Deps))
	for k := range d.Deps {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		p = append(p, Property{k, strings.Join(d.Deps[k], " ")})
	}
	return append(p, d.Properties...)
}

// cldCode is the numeric ExecMainCode systemd shows (siginfo's CLD_*).
func cldCode(code string) int {
	switch code {
	case "exited":
		return 1
	case "killed":
		return 2
	case "dumped":
		return 3
	}
	return 0
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("Mon 2006-01-02 15:04:05 MST")
}

func usage(valid bool, v uint64) string {
	if !valid {
		return "[not set]"
	}
	return strconv.FormatUint(v, 10)
}

func limit(v uint64) string {
	if v == 0 {
		return "infinity"
	}
	return strconv.FormatUint(v, 10)
}
