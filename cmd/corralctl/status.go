package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	corralv1 "corral.io/corral/api/corral/v1"
)

func statusCmd(a *app) *cobra.Command {
	var lines int
	c := &cobra.Command{
		Use:   "status UNIT...",
		Short: "Show runtime status of one or more units",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.status(cmd.Context(), mangleAll(args, ".service"), lines)
		},
	}
	c.Flags().IntVarP(&lines, "lines", "n", 10, "number of log lines to show")
	return c
}

// status prints each unit like systemctl status. Exit code: 4 if a unit does
// not exist, else 3 if one is not active, else 0.
func (a *app) status(ctx context.Context, names []string, lines int) error {
	uc, err := a.units()
	if err != nil {
		return err
	}
	code := exitOK
	var units []*corralv1.Unit
	for i, n := range names {
		resp, err := uc.GetUnit(ctx, &corralv1.GetUnitRequest{Name: n})
		if status.Code(err) == codes.NotFound || (err == nil && resp.GetUnit().GetLoadState() == "not-found" && resp.GetUnit().GetActiveState() == "inactive") {
			fmt.Fprintf(a.stderr, "Unit %s could not be found.\n", n)
			code = exitNoPermission
			continue
		}
		if err != nil {
			return a.rpcError("get status of "+n, err)
		}
		u := resp.GetUnit()
		if !isActive(u.GetActiveState()) && code == exitOK {
			code = exitNotRunning
		}
		if a.json() {
			units = append(units, u)
			continue
		}
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		printStatus(a.stdout, u, time.Now())
		if lines > 0 {
			var logs []*corralv1.LogEntry
			err := a.readLogs(ctx, &corralv1.LogsRequest{Unit: n, N: int32(lines)}, func(e *corralv1.LogEntry) error {
				logs = append(logs, e)
				return nil
			})
			if err != nil && status.Code(err) != codes.PermissionDenied {
				return a.rpcError("read logs of "+n, err)
			}
			if len(logs) > 0 {
				fmt.Fprintln(a.stdout)
				for _, e := range logs {
					fmt.Fprintln(a.stdout, formatLog(e))
				}
			}
		}
	}
	if a.json() {
		if err := writeJSONList(a.stdout, units); err != nil {
			return err
		}
	}
	if code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

func isActive(state string) bool {
	return state == "active" || state == "reloading"
}

// printStatus renders the systemctl status block for u.
func printStatus(w io.Writer, u *corralv1.Unit, now time.Time) {
	head := "● " + u.GetName()
	if u.GetDescription() != "" {
		head += " - " + u.GetDescription()
	}
	fmt.Fprintln(w, head)
	field := func(k, v string) { fmt.Fprintf(w, "%11s: %s\n", k, v) }
	cont := func(v string) { fmt.Fprintf(w, "%13s%s\n", "", v) }

	loaded := u.GetLoadState()
	switch {
	case u.GetLoadState() == "loaded":
		var extra []string
		if u.GetFragmentPath() != "" {
			extra = append(extra, u.GetFragmentPath())
		}
		if u.GetUnitFileState() != "" {
			extra = append(extra, u.GetUnitFileState())
		}
		if len(extra) > 0 {
			loaded += " (" + strings.Join(extra, "; ") + ")"
		}
	case u.GetLoadState() == "masked":
		loaded += " (Reason: Unit " + u.GetName() + " is masked.)"
	case u.GetLoadError() != "":
		loaded += " (Reason: " + u.GetLoadError() + ")"
	}
	field("Loaded", loaded)
	printDropIns(u.GetDropInPaths(), field, cont)

	active := u.GetActiveState()
	switch {
	case u.GetActiveState() == "failed" && u.GetResult() != "":
		active += " (Result: " + u.GetResult() + ")"
	case u.GetSubState() != "":
		active += " (" + u.GetSubState() + ")"
	}
	since := u.GetStateChangeTime()
	switch u.GetActiveState() {
	case "active", "reloading":
		if u.GetActiveEnterTime() != nil {
			since = u.GetActiveEnterTime()
		}
	case "inactive", "failed":
		if u.GetInactiveEnterTime() != nil {
			since = u.GetInactiveEnterTime()
		}
	}
	if since != nil && !(u.GetActiveState() == "inactive" && u.GetInactiveEnterTime() == nil) {
		active += " since " + formatTime(since.AsTime()) + "; " + ago(now.Sub(since.AsTime())) + " ago"
	}
	field("Active", active)
	if u.GetJobId() != 0 {
		field("Job", fmt.Sprintf("%d %s", u.GetJobId(), u.GetJobType()))
	}
	for _, wrn := range u.GetWarnings() {
		field("Warning", wrn)
	}

	procs := map[int64]string{}
	walk(u.GetProcesses(), func(p *corralv1.Process) { procs[p.GetPid()] = p.GetCmdline() })
	if pid := u.GetMainPid(); pid != 0 {
		field("Main PID", fmt.Sprintf("%d (%s)", pid, comm(procs[pid])))
	} else if em := u.GetExecMain(); em != nil && em.GetPid() != 0 && em.GetCode() != "" {
		field("Main PID", fmt.Sprintf("%d (code=%s, status=%s)", em.GetPid(), em.GetCode(), exitStatus(em.GetCode(), int(em.GetStatus()))))
	}
	if pid := u.GetControlPid(); pid != 0 {
		field("Cntrl PID", fmt.Sprintf("%d (%s)", pid, comm(procs[pid])))
	}
	if u.GetStatusText() != "" {
		field("Status", fmt.Sprintf("%q", u.GetStatusText()))
	}
	if u.GetHasTasks() {
		v := fmt.Sprint(u.GetTasksCurrent())
		if u.GetTasksMax() != 0 {
			v += fmt.Sprintf(" (limit: %d)", u.GetTasksMax())
		}
		field("Tasks", v)
	}
	if u.GetHasMemory() {
		v := bytesIEC(u.GetMemoryCurrent())
		if u.GetMemoryLimit() != 0 {
			v += " (max: " + bytesIEC(u.GetMemoryLimit()) + ")"
		}
		field("Memory", v)
	}
	if u.GetHasCpu() {
		field("CPU", time.Duration(u.GetCpuUsageNsec()).Round(time.Millisecond).String())
	}
	if u.GetCgroup() != "" {
		field("CGroup", u.GetCgroup())
		printTree(w, u.GetProcesses(), strings.Repeat(" ", 13))
	}
}

func printDropIns(paths []string, field func(k, v string), cont func(v string)) {
	byDir := map[string][]string{}
	var dirs []string
	for _, p := range paths {
		d := filepath.Dir(p)
		if _, ok := byDir[d]; !ok {
			dirs = append(dirs, d)
		}
		byDir[d] = append(byDir[d], filepath.Base(p))
	}
	for i, d := range dirs {
		if i == 0 {
			field("Drop-In", d)
		} else {
			cont(d)
		}
		cont("└─" + strings.Join(byDir[d], ", "))
	}
}

func walk(ps []*corralv1.Process, fn func(*corralv1.Process)) {
	for _, p := range ps {
		fn(p)
		walk(p.GetChildren(), fn)
	}
}

// printTree draws the process tree with systemd's box characters.
func printTree(w io.Writer, ps []*corralv1.Process, indent string) {
	for i, p := range ps {
		branch, next := "├─", "│ "
		if i == len(ps)-1 {
			branch, next = "└─", "  "
		}
		fmt.Fprintf(w, "%s%s%d %s\n", indent, branch, p.GetPid(), p.GetCmdline())
		printTree(w, p.GetChildren(), indent+next)
	}
}

// comm is the short process name systemctl shows after Main PID.
func comm(cmdline string) string {
	if cmdline == "" {
		return "n/a"
	}
	f := strings.Fields(cmdline)[0]
	return strings.Trim(filepath.Base(f), "[]")
}

func exitStatus(code string, st int) string {
	if code == "exited" {
		switch st {
		case 0:
			return "0/SUCCESS"
		case 1:
			return "1/FAILURE"
		case 2:
			return "2/INVALIDARGUMENT"
		case 3:
			return "3/NOTIMPLEMENTED"
		case 4:
			return "4/NOPERMISSION"
		case 5:
			return "5/NOTINSTALLED"
		case 6:
			return "6/NOTCONFIGURED"
		case 7:
			return "7/NOTRUNNING"
		}
		return fmt.Sprint(st)
	}
	name := strings.ToUpper(strings.ReplaceAll(syscall.Signal(st).String(), " ", ""))
	if s, ok := signalNames[st]; ok {
		name = s
	}
	return fmt.Sprintf("%d/%s", st, name)
}

func formatTime(t time.Time) string {
	return t.Local().Format("Mon 2006-01-02 15:04:05 MST")
}

// ago renders a duration the way systemd does in "since ...; 5min ago".
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dmin %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dmin", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

func bytesIEC(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	v, suffix := float64(b), ""
	for _, s := range []string{"K", "M", "G", "T", "P"} {
		v /= unit
		suffix = s
		if v < unit {
			break
		}
	}
	return fmt.Sprintf("%.1f%s", v, suffix)
}

// readLogs streams log entries to fn until the server ends the stream.
func (a *app) readLogs(ctx context.Context, req *corralv1.LogsRequest, fn func(*corralv1.LogEntry) error) error {
	uc, err := a.units()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := uc.Logs(ctx, req)
	if err != nil {
		return err
	}
	for {
		e, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// formatLog is journalctl's short format: "Jan 02 15:04:05 unit: msg".
// Messages Corral itself wrote about the unit are attributed to corral.
func formatLog(e *corralv1.LogEntry) string {
	src := e.GetUnit()
	if e.GetStream() == "core" {
		src = "corral"
	}
	return tsShort(e.GetTime()) + " " + src + ": " + e.GetMessage()
}

func tsShort(t *timestamppb.Timestamp) string {
	return t.AsTime().Local().Format("Jan 02 15:04:05")
}
