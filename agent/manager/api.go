package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/job"
	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/unit"
)

var _ apiserver.Manager = (*Manager)(nil)

// ListUnits reports every loaded unit.
func (m *Manager) ListUnits(ctx context.Context) ([]apiserver.UnitSummary, error) {
	jobs := m.jobsByUnit()
	es := m.entries()
	out := make([]apiserver.UnitSummary, 0, len(es))
	for _, e := range es {
		out = append(out, m.summary(e, jobs))
	}
	return out, nil
}

func (m *Manager) jobsByUnit() map[string]job.Info {
	jobs := map[string]job.Info{}
	for _, j := range m.engine.Jobs() {
		jobs[j.Unit] = j
	}
	return jobs
}

func (m *Manager) summary(e *entry, jobs map[string]job.Info) apiserver.UnitSummary {
	u := e.unit()
	s := apiserver.UnitSummary{
		Name: u.Name, Description: u.Description, LoadState: string(u.LoadState),
		ActiveState: e.activeState(), SubState: m.subState(e),
	}
	if j, ok := jobs[u.Name]; ok {
		s.JobID, s.JobType = j.ID, string(j.Type)
	}
	return s
}

// UnitStatus reports one unit, loading it if needed.
func (m *Manager) UnitStatus(ctx context.Context, name string) (apiserver.UnitDetail, error) {
	if err := checkName(name); err != nil {
		return apiserver.UnitDetail{}, err
	}
	e := m.get(name)
	u := e.unit()
	d := apiserver.UnitDetail{
		UnitSummary:  m.summary(e, m.jobsByUnit()),
		Names:        append([]string{u.Name}, u.Aliases...),
		LoadError:    u.LoadError,
		FragmentPath: u.Path,
		DropIns:      u.DropIns,
		Deps:         map[string][]string{},
	}
	for _, w := range u.Warnings {
		d.Warnings = append(d.Warnings, w.String())
	}
	for k, v := range u.Deps {
		d.Deps[string(k)] = v
	}
	if st, err := unit.NewInstaller(m.loader, m.cfg.Root).IsEnabled(u.Name); err == nil {
		d.UnitFileState = st
	}
	switch {
	case e.svc != nil:
		st := e.svc.Status()
		d.Result = string(st.Result)
		d.MainPID, d.ControlPID = st.MainPID, st.ControlPID
		d.StatusText, d.NRestarts = st.StatusText, st.NRestarts
		d.StateChange = st.Since
		d.ExecMain = apiserver.ExecStatus{Code: exitCodeName(st.ExecMainCode), Status: st.ExecMainStatus}
		d.Cgroup = st.Cgroup
	case e.sock != nil:
		st := e.sock.Status()
		d.Result, d.StateChange = st.Result, st.Since
		d.Properties = append(d.Properties,
			apiserver.Property{Key: "NAccepted", Value: fmt.Sprint(st.NAccepted)},
			apiserver.Property{Key: "NConnections", Value: fmt.Sprint(st.NConnections)})
	default:
		e.mu.Lock()
		d.StateChange = e.since
		e.mu.Unlock()
	}
	if u.Type == unit.TypeSlice {
		d.Cgroup = sliceCgroup(u.Name)
	}
	if d.Cgroup != "" {
		if pids, err := m.cg.Pids(d.Cgroup); err == nil {
			d.PIDs = pids
			d.Tasks = apiserver.Usage{Valid: true, Current: uint64(len(pids))}
		}
		if st, err := m.cg.Stats(d.Cgroup); err == nil {
			d.Memory = apiserver.Usage{Valid: true, Current: st.MemoryUsage, Max: st.MemoryLimit}
			d.CPU = apiserver.Usage{Valid: true, Current: st.CPUUsageNS}
		}
		d.Cgroup = "/" + strings.TrimPrefix(m.cfg.CgroupBase+"/"+d.Cgroup, "/")
	}
	d.Properties = append(d.Properties, properties(u)...)
	return d, nil
}

func exitCodeName(c int) string {
	switch c {
	case 1:
		return "exited"
	case 2:
		return "killed"
	case 3:
		return "dumped"
	}
	return ""
}

// properties are the configuration lines of `show`.
func properties(u *unit.Unit) []apiserver.Property {
	var p []apiserver.Property
	add := func(k, v string) {
		if v != "" {
			p = append(p, apiserver.Property{Key: k, Value: v})
		}
	}
	if s := u.Service; s != nil {
		add("Type", string(s.Type))
		add("Restart", string(s.Restart))
		add("RestartUSec", s.RestartSec.String())
		add("TimeoutStartUSec", s.TimeoutStartSec.String())
		add("TimeoutStopUSec", s.TimeoutStopSec.String())
		add("KillMode", string(s.KillMode))
		add("NotifyAccess", string(s.NotifyAccess))
		add("User", s.User)
		add("Group", s.Group)
		add("WorkingDirectory", s.WorkingDirectory)
		add("Slice", s.Slice)
		for _, c := range s.ExecStart {
			add("ExecStart", "{ path="+c.Path+" ; argv[]="+strings.Join(c.Args, " ")+" }")
		}
		for _, e := range s.Environment {
			add("Environment", e)
		}
	}
	if s := u.Socket; s != nil {
		for _, l := range s.Listen {
			add("Listen", l.Address+" ("+l.Kind+")")
		}
		add("Accept", fmt.Sprint(s.Accept))
	}
	return p
}

// Kill signals a unit's processes.
func (m *Manager) Kill(ctx context.Context, name, whom string, sig syscall.Signal) error {
	e, err := m.existing(name)
	if err != nil {
		return err
	}
	if e.svc == nil {
		return fmt.Errorf("unit %s has no processes to signal: %w", name, apiserver.ErrRefused)
	}
	return e.svc.Kill(whom, sig)
}

// ResetFailed clears failure state and start-limit counters.
func (m *Manager) ResetFailed(ctx context.Context, name string) error {
	if name == "" {
		for _, e := range m.entries() {
			m.resetFailed(e)
		}
		return nil
	}
	e, err := m.existing(name)
	if err != nil {
		return err
	}
	m.resetFailed(e)
	return nil
}

func (m *Manager) resetFailed(e *entry) {
	switch {
	case e.svc != nil:
		e.svc.ResetFailed()
	case e.activeState() == "failed":
		e.setActive("inactive")
	}
}

// Cat returns the fragment and drop-ins as they are on disk.
func (m *Manager) Cat(ctx context.Context, name string) ([]apiserver.UnitFile, error) {
	e, err := m.existing(name)
	if err != nil {
		return nil, err
	}
	u := e.unit()
	if u.Path == "" {
		return nil, fmt.Errorf("unit %s has no unit file: %w", name, apiserver.ErrNotFound)
	}
	var out []apiserver.UnitFile
	for _, p := range append([]string{u.Path}, u.DropIns...) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", name, err)
		}
		out = append(out, apiserver.UnitFile{Path: p, Content: string(b)})
	}
	return out, nil
}

// existing returns a unit that has a unit file (or is running), or
// ErrNotFound naming it.
func (m *Manager) existing(name string) (*entry, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	e := m.get(name)
	if e.unit().LoadState == unit.LoadNotFound && e.activeState() == "inactive" {
		return nil, fmt.Errorf("unit %s not found: %w", name, apiserver.ErrNotFound)
	}
	return e, nil
}

func checkName(name string) error {
	if unit.TypeOf(name) == "" || strings.ContainsAny(name, "/\x00") || len(name) > 256 {
		return fmt.Errorf("unit name %q is not valid: %w", name, apiserver.ErrInvalid)
	}
	return nil
}

// Enqueue runs a job request from the API.
func (m *Manager) Enqueue(ctx context.Context, name, jobType, mode string, wait bool) (apiserver.JobResult, error) {
	if err := checkName(name); err != nil {
		return apiserver.JobResult{}, err
	}
	select {
	case <-m.ready:
	default:
		return apiserver.JobResult{}, fmt.Errorf("unit %s: %w (manager is starting)", name, apiserver.ErrUnavailable)
	}
	if m.runCtx.Err() != nil {
		return apiserver.JobResult{}, fmt.Errorf("unit %s: %w: %w", name, apiserver.ErrUnavailable, errStopping)
	}
	jm, err := job.ParseMode(mode)
	if err != nil {
		return apiserver.JobResult{}, fmt.Errorf("%w: %w", apiserver.ErrInvalid, err)
	}
	t := job.Type(jobType)
	switch t {
	case job.Start, job.Stop, job.Restart, job.Reload, job.TryRestart, job.ReloadOrRestart, job.TryReloadOrRestart:
	case "isolate":
		t, jm = job.Start, job.Isolate
	default:
		return apiserver.JobResult{}, fmt.Errorf("job type %q: %w", jobType, apiserver.ErrInvalid)
	}
	e := m.get(name)
	u := e.unit()
	if (t == job.Start || t == job.Restart) && u.RefuseManualStart {
		return apiserver.JobResult{}, fmt.Errorf("unit %s may not be started manually (RefuseManualStart=yes): %w", name, apiserver.ErrRefused)
	}
	if t == job.Stop && u.RefuseManualStop {
		return apiserver.JobResult{}, fmt.Errorf("unit %s may not be stopped manually (RefuseManualStop=yes): %w", name, apiserver.ErrRefused)
	}
	// The job belongs to the manager, not to the request: a client that
	// disconnects does not cancel it.
	j, err := m.engine.Enqueue(m.runCtx, name, t, jm)
	if err != nil {
		return apiserver.JobResult{}, jobError(name, err)
	}
	res := apiserver.JobResult{ID: j.ID(), Type: string(j.Type())}
	if !wait {
		return res, nil
	}
	r, err := m.engine.Wait(ctx, j)
	if err != nil {
		return res, err
	}
	res.Result = string(r)
	if !r.Success() {
		detail := ""
		if jerr := j.Err(); jerr != nil {
			detail = ": " + jerr.Error()
		}
		return res, fmt.Errorf("job for %s finished with result %s%s", name, r, detail)
	}
	return res, nil
}

// jobError maps the engine's errors to the API's error classes.
func jobError(name string, err error) error {
	switch {
	case errors.Is(err, job.ErrNotFound):
		return fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	case errors.Is(err, job.ErrInvalidMode):
		return fmt.Errorf("%w: %w", apiserver.ErrInvalid, err)
	case errors.Is(err, job.ErrBadSetting), errors.Is(err, job.ErrLoad), errors.Is(err, job.ErrMasked),
		errors.Is(err, job.ErrConflict), errors.Is(err, job.ErrCycle), errors.Is(err, job.ErrDestructive),
		errors.Is(err, job.ErrIsolate), errors.Is(err, job.ErrNotApplicable), errors.Is(err, job.ErrRefused):
		return fmt.Errorf("%w: %w", apiserver.ErrRefused, err)
	}
	return fmt.Errorf("unit %s: %w", name, err)
}

// ListJobs lists installed jobs.
func (m *Manager) ListJobs(ctx context.Context) ([]apiserver.Job, error) {
	var out []apiserver.Job
	for _, j := range m.engine.Jobs() {
		out = append(out, apiserver.Job{ID: j.ID, Unit: j.Unit, Type: string(j.Type), State: string(j.State)})
	}
	return out, nil
}

// CancelJob cancels one job.
func (m *Manager) CancelJob(ctx context.Context, id uint64) error {
	if err := m.engine.Cancel(id); err != nil {
		return fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	return nil
}

// Logs reads the log store.
func (m *Manager) Logs(ctx context.Context, name string, n int, since time.Time, follow bool, fn func(apiserver.LogEntry) error) error {
	if name != "" {
		if err := checkName(name); err != nil {
			return err
		}
	}
	return m.logs.Read(ctx, name, logs.Query{N: n, Since: since, Follow: follow}, func(e logs.Entry) error {
		return fn(apiserver.LogEntry{Time: e.Time, Unit: e.Unit, Stream: string(e.Stream), Msg: e.Msg})
	})
}

// SystemState reports the manager's overall state.
func (m *Manager) SystemState(ctx context.Context) (apiserver.SystemState, error) {
	m.mu.RLock()
	st := m.state
	m.mu.RUnlock()
	failed := 0
	for _, e := range m.entries() {
		if e.activeState() == "failed" {
			failed++
		}
	}
	if st == "running" && failed > 0 {
		st = "degraded"
	}
	return apiserver.SystemState{State: st, FailedUnits: failed, Jobs: len(m.engine.Jobs())}, nil
}

// Shutdown stops every unit and ends the agent. Machine-level actions
// (poweroff, reboot, halt) belong to the PID 1 issue; here they also just
// end the agent, which the supervisor treats as "stop".
func (m *Manager) Shutdown(ctx context.Context, action string) error {
	switch action {
	case "exit", "poweroff", "reboot", "halt":
	default:
		return fmt.Errorf("shutdown action %q: %w", action, apiserver.ErrInvalid)
	}
	if m.cfg.OnShutdown != nil {
		go m.cfg.OnShutdown(action)
	} else {
		go m.Exit()
	}
	return nil
}
