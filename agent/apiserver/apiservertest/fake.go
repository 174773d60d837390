// Package apiservertest provides an in-memory apiserver.Manager and a helper
// that serves it on a real unix socket, for tests of the server and of
// clients such as corralctl.
package apiservertest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/agent/apiserver"
)

// Fake is a Manager over maps. Jobs complete at once: start makes a unit
// active/running, stop inactive/dead, unless Results says otherwise.
type Fake struct {
	mu       sync.Mutex
	units    map[string]*apiserver.UnitDetail
	files    map[string][]apiserver.UnitFile
	enabled  map[string]string
	logs     []apiserver.LogEntry
	jobs     []apiserver.Job
	calls    []string
	nextJob  uint64
	results  map[string]string
	shutdown string
}

var _ apiserver.Manager = (*Fake)(nil)

// New returns an empty Fake.
func New() *Fake {
	return &Fake{
		units: map[string]*apiserver.UnitDetail{}, files: map[string][]apiserver.UnitFile{},
		enabled: map[string]string{}, results: map[string]string{}, nextJob: 1,
	}
}

// AddUnit adds or replaces a unit with its files (fragment first).
func (f *Fake) AddUnit(d apiserver.UnitDetail, files ...apiserver.UnitFile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.units[d.Name] = &d
	f.files[d.Name] = files
	if _, ok := f.enabled[d.Name]; !ok {
		f.enabled[d.Name] = "disabled"
	}
}

// SetJobResult makes waited jobs on unit finish with result (e.g. "failed").
func (f *Fake) SetJobResult(unit, result string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[unit] = result
}

// AddJob adds a pending job to ListJobs.
func (f *Fake) AddJob(j apiserver.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = append(f.jobs, j)
}

// AddLog appends a log entry.
func (f *Fake) AddLog(e apiserver.LogEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, e)
}

// Calls returns the calls made so far, e.g. "Enqueue foo.service start replace wait=true".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Unit returns the current state of a unit.
func (f *Fake) Unit(name string) (apiserver.UnitDetail, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.units[name]
	if !ok {
		return apiserver.UnitDetail{}, false
	}
	return *d, true
}

func (f *Fake) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func notFound(name string) error {
	return fmt.Errorf("unit %s: %w", name, apiserver.ErrNotFound)
}

// ListUnits implements apiserver.Manager.
func (f *Fake) ListUnits(context.Context) ([]apiserver.UnitSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListUnits")
	var out []apiserver.UnitSummary
	for _, d := range f.units {
		out = append(out, d.UnitSummary)
	}
	return out, nil
}

// UnitStatus implements apiserver.Manager.
func (f *Fake) UnitStatus(_ context.Context, name string) (apiserver.UnitDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("UnitStatus %s", name)
	d, ok := f.units[name]
	if !ok {
		return apiserver.UnitDetail{}, notFound(name)
	}
	return *d, nil
}

// Kill implements apiserver.Manager.
func (f *Fake) Kill(_ context.Context, name, whom string, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Kill %s %s %d", name, whom, int(sig))
	if _, ok := f.units[name]; !ok {
		return notFound(name)
	}
	return nil
}

// ResetFailed implements apiserver.Manager.
func (f *Fake) ResetFailed(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ResetFailed %s", name)
	for n, d := range f.units {
		if (name == "" || n == name) && d.ActiveState == "failed" {
			d.ActiveState, d.SubState, d.Result = "inactive", "dead", "success"
		}
	}
	if _, ok := f.units[name]; name != "" && !ok {
		return notFound(name)
	}
	return nil
}

// Cat implements apiserver.Manager.
func (f *Fake) Cat(_ context.Context, name string) ([]apiserver.UnitFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Cat %s", name)
	files, ok := f.files[name]
	if !ok || len(files) == 0 {
		return nil, notFound(name)
	}
	return files, nil
}

// Enqueue implements apiserver.Manager.
func (f *Fake) Enqueue(_ context.Context, name, jobType, mode string, wait bool) (apiserver.JobResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Enqueue %s %s %s wait=%v", name, jobType, mode, wait)
	d, ok := f.units[name]
	if !ok {
		return apiserver.JobResult{}, notFound(name)
	}
	if d.LoadState == "masked" {
		return apiserver.JobResult{}, fmt.Errorf("unit %s is masked: %w", name, apiserver.ErrRefused)
	}
	r := apiserver.JobResult{ID: f.nextJob, Type: jobType}
	f.nextJob++
	res := f.results[name]
	if res == "" {
		res = "done"
	}
	switch {
	case res != "done":
		d.ActiveState, d.SubState, d.Result = "failed", "failed", "exit-code"
	case jobType == "stop":
		d.ActiveState, d.SubState = "inactive", "dead"
	default:
		d.ActiveState, d.SubState = "active", "running"
	}
	if wait {
		r.Result = res
	}
	return r, nil
}

// ListJobs implements apiserver.Manager.
func (f *Fake) ListJobs(context.Context) ([]apiserver.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListJobs")
	return slices.Clone(f.jobs), nil
}

// CancelJob implements apiserver.Manager.
func (f *Fake) CancelJob(_ context.Context, id uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CancelJob %d", id)
	i := slices.IndexFunc(f.jobs, func(j apiserver.Job) bool { return j.ID == id })
	if i < 0 {
		return fmt.Errorf("job %d: %w", id, apiserver.ErrNotFound)
	}
	f.jobs = slices.Delete(f.jobs, i, i+1)
	return nil
}

func (f *Fake) unitFiles(verb, state string, names []string, now bool) ([]apiserver.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("%s %v now=%v", verb, names, now)
	var ch []apiserver.Change
	for _, n := range names {
		d, ok := f.units[n]
		if !ok {
			return nil, notFound(n)
		}
		link := filepath.Join("/etc/corral/system/multi-user.target.wants", n)
		switch verb {
		case "Enable":
			ch = append(ch, apiserver.Change{Type: "symlink", Path: link, Source: d.FragmentPath})
		case "Disable":
			ch = append(ch, apiserver.Change{Type: "unlink", Path: link})
		case "Mask":
			ch = append(ch, apiserver.Change{Type: "symlink", Path: "/etc/corral/system/" + n, Source: "/dev/null"})
		case "Unmask":
			ch = append(ch, apiserver.Change{Type: "unlink", Path: "/etc/corral/system/" + n})
		}
		f.enabled[n] = state
	}
	return ch, nil
}

// Enable implements apiserver.Manager.
func (f *Fake) Enable(_ context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return f.unitFiles("Enable", "enabled", names, now)
}

// Disable implements apiserver.Manager.
func (f *Fake) Disable(_ context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return f.unitFiles("Disable", "disabled", names, now)
}

// Mask implements apiserver.Manager.
func (f *Fake) Mask(_ context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return f.unitFiles("Mask", "masked", names, now)
}

// Unmask implements apiserver.Manager.
func (f *Fake) Unmask(_ context.Context, names []string, now bool) ([]apiserver.Change, error) {
	return f.unitFiles("Unmask", "disabled", names, now)
}

// IsEnabled implements apiserver.Manager.
func (f *Fake) IsEnabled(_ context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("IsEnabled %s", name)
	st, ok := f.enabled[name]
	if !ok {
		return "", notFound(name)
	}
	return st, nil
}

// DaemonReload implements apiserver.Manager.
func (f *Fake) DaemonReload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("DaemonReload")
	return nil
}

// Logs implements apiserver.Manager. With follow it sends the stored entries
// and then blocks until ctx is done.
func (f *Fake) Logs(ctx context.Context, name string, n int, since time.Time, follow bool, fn func(apiserver.LogEntry) error) error {
	f.mu.Lock()
	f.record("Logs %s n=%d follow=%v", name, n, follow)
	var sel []apiserver.LogEntry
	for _, e := range f.logs {
		if (name == "" || e.Unit == name) && (since.IsZero() || !e.Time.Before(since)) {
			sel = append(sel, e)
		}
	}
	f.mu.Unlock()
	if n > 0 && len(sel) > n {
		sel = sel[len(sel)-n:]
	}
	for _, e := range sel {
		if err := fn(e); err != nil {
			return err
		}
	}
	if follow {
		<-ctx.Done()
	}
	return nil
}

// SystemState implements apiserver.Manager.
func (f *Fake) SystemState(context.Context) (apiserver.SystemState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := apiserver.SystemState{State: "running", Jobs: len(f.jobs)}
	for _, d := range f.units {
		if d.ActiveState == "failed" {
			st.FailedUnits++
		}
	}
	if st.FailedUnits > 0 {
		st.State = "degraded"
	}
	return st, nil
}

// Shutdown implements apiserver.Manager.
func (f *Fake) Shutdown(_ context.Context, action string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Shutdown %s", action)
	f.shutdown = action
	return nil
}

// Serve runs an apiserver for m on <root>/run/corral/api.sock in a fresh
// temporary root and returns the root. Everything stops at test cleanup.
func Serve(t testing.TB, m apiserver.Manager) string {
	t.Helper()
	root := t.TempDir()
	l, err := apiserver.Listen(apiserver.SocketPath(root))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := apiserver.New(m, apiserver.Options{Version: "test"})
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("apiserver: %v", err)
		}
	})
	return root
}
