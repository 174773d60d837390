package apiserver

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	corralv1 "corral.io/corral/api/corral/v1"
)

// ListUnits implements corralv1.UnitServiceServer.
func (s *Server) ListUnits(ctx context.Context, req *corralv1.ListUnitsRequest) (*corralv1.ListUnitsResponse, error) {
	all, err := s.m.ListUnits(ctx)
	if err != nil {
		return nil, err
	}
	f := ListFilter{All: req.GetAll(), Types: req.GetTypes(), States: req.GetStates(), Patterns: req.GetPatterns()}
	resp := &corralv1.ListUnitsResponse{}
	for _, u := range filterUnits(all, f) {
		resp.Units = append(resp.Units, &corralv1.UnitSummary{
			Name: u.Name, Description: u.Description, LoadState: u.LoadState,
			ActiveState: u.ActiveState, SubState: u.SubState, JobId: u.JobID, JobType: u.JobType,
		})
	}
	return resp, nil
}

// filterUnits applies systemctl list-units' selection and sorts by name.
// Without --all or --state, only units that are active, failed or have a
// job are shown.
func filterUnits(units []UnitSummary, f ListFilter) []UnitSummary {
	var out []UnitSummary
	for _, u := range units {
		if !f.All && len(f.States) == 0 && u.ActiveState == "inactive" && u.JobID == 0 {
			continue
		}
		if len(f.Types) > 0 && !slices.Contains(f.Types, unitType(u.Name)) {
			continue
		}
		if len(f.States) > 0 && !slices.ContainsFunc(f.States, func(st string) bool {
			return st == u.LoadState || st == u.ActiveState || st == u.SubState
		}) {
			continue
		}
		if len(f.Patterns) > 0 && !slices.ContainsFunc(f.Patterns, func(p string) bool {
			ok, _ := path.Match(p, u.Name)
			return ok
		}) {
			continue
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func unitType(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return ""
}

// GetUnit implements corralv1.UnitServiceServer.
func (s *Server) GetUnit(ctx context.Context, req *corralv1.GetUnitRequest) (*corralv1.GetUnitResponse, error) {
	if req.GetName() == "" {
		return nil, fmt.Errorf("unit name: %w", ErrInvalid)
	}
	d, err := s.m.UnitStatus(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &corralv1.GetUnitResponse{Unit: s.unitProto(d)}, nil
}

func (s *Server) unitProto(d UnitDetail) *corralv1.Unit {
	u := &corralv1.Unit{
		Name: d.Name, Names: namesOf(d), Description: d.Description,
		LoadState: d.LoadState, ActiveState: d.ActiveState, SubState: d.SubState,
		Result: d.Result, LoadError: d.LoadError, Warnings: d.Warnings,
		FragmentPath: d.FragmentPath, DropInPaths: d.DropIns, UnitFileState: d.UnitFileState,
		MainPid: int64(d.MainPID), ControlPid: int64(d.ControlPID), StatusText: d.StatusText,
		NRestarts:         uint32(d.NRestarts),
		StateChangeTime:   ts(d.StateChange),
		ActiveEnterTime:   ts(d.ActiveEnter),
		ActiveExitTime:    ts(d.ActiveExit),
		InactiveEnterTime: ts(d.InactiveEnter),
		InactiveExitTime:  ts(d.InactiveExit),
		Cgroup:            d.Cgroup,
		Processes:         s.processTree(d.PIDs),
		HasMemory:         d.Memory.Valid, MemoryCurrent: d.Memory.Current, MemoryLimit: d.Memory.Max,
		HasTasks: d.Tasks.Valid, TasksCurrent: d.Tasks.Current, TasksMax: d.Tasks.Max,
		HasCpu: d.CPU.Valid, CpuUsageNsec: d.CPU.Current,
		JobId: d.JobID, JobType: d.JobType,
	}
	if d.ExecMain.PID != 0 || d.ExecMain.Code != "" {
		u.ExecMain = &corralv1.ExecStatus{
			Pid: int64(d.ExecMain.PID), Code: d.ExecMain.Code, Status: int32(d.ExecMain.Status),
			StartTime: ts(d.ExecMain.Start), ExitTime: ts(d.ExecMain.Exit),
		}
	}
	kinds := make([]string, 0, len(d.Deps))
	for k := range d.Deps {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if len(d.Deps[k]) > 0 {
			u.Dependencies = append(u.Dependencies, &corralv1.Dependency{Kind: k, Units: d.Deps[k]})
		}
	}
	return u
}

func namesOf(d UnitDetail) []string {
	if slices.Contains(d.Names, d.Name) {
		return d.Names
	}
	return append([]string{d.Name}, d.Names...)
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Kill implements corralv1.UnitServiceServer.
func (s *Server) Kill(ctx context.Context, req *corralv1.KillRequest) (*corralv1.KillResponse, error) {
	if len(req.GetNames()) == 0 {
		return nil, fmt.Errorf("kill: no unit names: %w", ErrInvalid)
	}
	whom := req.GetWhom()
	switch whom {
	case "":
		whom = "all"
	case "all", "main", "control":
	default:
		return nil, fmt.Errorf("kill: whom %q (want all, main or control): %w", whom, ErrInvalid)
	}
	sig := syscall.Signal(req.GetSignal())
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if sig < 0 || sig > 64 {
		return nil, fmt.Errorf("kill: signal %d: %w", sig, ErrInvalid)
	}
	for _, n := range req.GetNames() {
		if err := s.m.Kill(ctx, n, whom, sig); err != nil {
			return nil, err
		}
	}
	return &corralv1.KillResponse{}, nil
}

// ResetFailed implements corralv1.UnitServiceServer.
func (s *Server) ResetFailed(ctx context.Context, req *corralv1.ResetFailedRequest) (*corralv1.ResetFailedResponse, error) {
	names := req.GetNames()
	if len(names) == 0 {
		names = []string{""}
	}
	for _, n := range names {
		if err := s.m.ResetFailed(ctx, n); err != nil {
			return nil, err
		}
	}
	return &corralv1.ResetFailedResponse{}, nil
}

// Cat implements corralv1.UnitServiceServer.
func (s *Server) Cat(ctx context.Context, req *corralv1.CatRequest) (*corralv1.CatResponse, error) {
	resp := &corralv1.CatResponse{}
	for _, n := range req.GetNames() {
		files, err := s.m.Cat(ctx, n)
		if err != nil {
			return nil, err
		}
		cu := &corralv1.CatUnit{Name: n}
		var b strings.Builder
		for i, f := range files {
			cu.Files = append(cu.Files, &corralv1.UnitFile{Path: f.Path, Content: f.Content})
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString("# " + f.Path + "\n")
			b.WriteString(f.Content)
			if f.Content != "" && !strings.HasSuffix(f.Content, "\n") {
				b.WriteString("\n")
			}
		}
		cu.Text = b.String()
		resp.Units = append(resp.Units, cu)
	}
	return resp, nil
}
