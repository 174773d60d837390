package job

import (
	"context"
	"errors"
	"testing"
	"time"

	"corral.io/corral/agent/unit"
)

// TestRunOrdering: b After a, so a's start ends before b's begins; stopping
// both runs in reverse order.
func TestRunOrdering(t *testing.T) {
	A, B := "a.service", "b.service"
	g := newGraph().dep(B, unit.Requires, A).dep(B, unit.After, A)
	x := newExec(g)
	x.gate[A] = make(chan struct{})
	x.entered = make(chan string, 10)
	e := New(g, x, nil)
	run(t, e)
	ctx := context.Background()
	j := must(t)(e.Enqueue(ctx, B, Start, Replace))
	<-x.entered
	// Both jobs were installed together, so b would have been launched in
	// the same dispatch pass as a had nothing ordered it.
	if i, _ := e.JobOf(B); i.State != Waiting {
		t.Errorf("b is %s while a is starting", i.State)
	}
	close(x.gate[A])
	go func() {
		for range x.entered {
		}
	}()
	defer close(x.entered)
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	c := x.calls()
	if index(t, c, "end start "+A) > index(t, c, "begin start "+B) {
		t.Errorf("b started before a finished: %v", c)
	}

	j = must(t)(e.Enqueue(ctx, A, Stop, Replace)) // pulls stop b (RequiredBy)
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	c = x.calls()
	if index(t, c, "end stop "+B) > index(t, c, "begin stop "+A) {
		t.Errorf("a stopped before b: %v", c)
	}
}

// TestRunStopFirst: a Before b, with a start job on a and a stop job on b:
// the stop goes first even though the order says a before b.
func TestRunStopFirst(t *testing.T) {
	A, B := "a.service", "b.service"
	g := newGraph().dep(A, unit.Before, B).dep(A, unit.Conflicts, B)
	g.states[B] = "active"
	x := newExec(g)
	e := New(g, x, nil)
	run(t, e)
	j := must(t)(e.Enqueue(context.Background(), A, Start, Replace))
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	c := x.calls()
	if index(t, c, "end stop "+B) > index(t, c, "begin start "+A) {
		t.Errorf("start a ran before stop b: %v", c)
	}
}

// TestRunParallel: jobs that nothing orders run at the same time: both
// executor calls are entered before either is allowed to return.
func TestRunParallel(t *testing.T) {
	T, A, B, C := "t.target", "a.service", "b.service", "c.service"
	g := newGraph().dep(T, unit.Wants, A).dep(T, unit.Wants, B).dep(T, unit.Wants, C).
		dep(T, unit.After, A).dep(T, unit.After, B).dep(C, unit.After, A)
	x := newExec(g)
	x.entered = make(chan string, 10)
	gate := make(chan struct{})
	x.gate[A], x.gate[B] = gate, gate
	e := New(g, x, nil)
	run(t, e)
	j := must(t)(e.Enqueue(context.Background(), T, Start, Replace))
	jc := e.installedJob(C) // waits for a, which is gated
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case s := <-x.entered:
			got[s] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("a and b did not run in parallel; entered %v", got)
		}
	}
	if !got["start "+A] || !got["start "+B] {
		t.Fatalf("entered %v, want a and b", got)
	}
	close(gate)
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	if r := wait(t, e, jc); r != Done {
		t.Fatalf("c result %s", r)
	}
	c := x.calls()
	if index(t, c, "end start "+A) > index(t, c, "begin start "+C) {
		t.Errorf("c (After a) started before a finished: %v", c)
	}
	if index(t, c, "end start "+A) > index(t, c, "begin start "+T) || index(t, c, "end start "+B) > index(t, c, "begin start "+T) {
		t.Errorf("target started before its After= units: %v", c)
	}
}

// TestRunDependencyFailure: a failed start fails the start jobs that require
// it (transitively) with result dependency; Wants= does not propagate.
func TestRunDependencyFailure(t *testing.T) {
	T, A, B, C, W := "t.target", "a.service", "b.service", "c.service", "w.service"
	g := newGraph().
		dep(T, unit.Wants, C).dep(T, unit.Wants, W).
		dep(B, unit.Requires, A).dep(B, unit.After, A).
		dep(C, unit.BindsTo, B).dep(C, unit.After, B).
		dep(W, unit.Wants, A).dep(W, unit.After, A)
	x := newExec(g)
	x.errs["start "+A] = errBoom
	e := New(g, x, nil)
	run(t, e)
	ctx := context.Background()
	jc := must(t)(e.Enqueue(ctx, C, Start, Replace))
	jw := must(t)(e.Enqueue(ctx, W, Start, Replace))
	if r := wait(t, e, jc); r != Dependency {
		t.Errorf("c result %s, want dependency", r)
	}
	if r := wait(t, e, jw); r != Done {
		t.Errorf("w (Wants=a) result %s, want done", r)
	}
	for _, c := range x.calls() {
		if c == "begin start "+B || c == "begin start "+C {
			t.Errorf("executor called for a unit whose requirement failed: %v", x.calls())
		}
	}
}

// TestRunResults maps executor errors and unit states to job results.
func TestRunResults(t *testing.T) {
	A := "a.service"
	tests := []struct {
		name   string
		typ    Type
		state  string
		err    error
		want   Result
		called bool
	}{
		{"start ok", Start, "inactive", nil, Done, true},
		{"start failed", Start, "inactive", errBoom, Failed, true},
		{"condition", Start, "inactive", ErrSkipped, Skipped, true},
		{"assert", Start, "inactive", ErrAssert, Assert, true},
		{"wrapped unsupported", Start, "inactive", errors.Join(errBoom, ErrUnsupported), Unsupported, true},
		{"typed result", Start, "inactive", &ResultError{Result: Timeout, Err: errBoom}, Timeout, true},
		{"start of active unit", Start, "active", nil, Done, false},
		{"stop of failed unit", Stop, "failed", nil, Done, false},
		{"verify-active of inactive", VerifyActive, "inactive", nil, Invalid, false},
		{"verify-active of active", VerifyActive, "active", nil, Done, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraph().add(A)
			g.states[A] = tc.state
			x := newExec(g)
			if tc.err != nil {
				x.errs[string(tc.typ)+" "+A] = tc.err
			}
			e := New(g, x, nil)
			run(t, e)
			j := must(t)(e.Enqueue(context.Background(), A, tc.typ, Replace))
			if r := wait(t, e, j); r != tc.want {
				t.Errorf("result %s, want %s (err %v)", r, tc.want, j.Err())
			}
			if called := len(x.calls()) > 0; called != tc.called {
				t.Errorf("executor called = %v, want %v: %v", called, tc.called, x.calls())
			}
		})
	}
}

// TestRunRestart: restart stops then starts, and units ordered after it wait
// for the whole restart.
func TestRunRestart(t *testing.T) {
	A, B := "a.service", "b.service"
	g := newGraph().dep(B, unit.Requires, A).dep(B, unit.After, A)
	g.states[A], g.states[B] = "active", "active"
	x := newExec(g)
	e := New(g, x, nil)
	run(t, e)
	j := must(t)(e.Enqueue(context.Background(), A, Restart, Replace))
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	eventually(t, "no jobs left", func() bool { return len(e.Jobs()) == 0 })
	c := x.calls()
	// b's stop first (reverse order), then a stop, a start, b start.
	order := []string{"begin stop " + B, "begin stop " + A, "begin start " + A, "begin start " + B}
	for i := 1; i < len(order); i++ {
		if index(t, c, order[i-1]) > index(t, c, order[i]) {
			t.Errorf("%q after %q: %v", order[i-1], order[i], c)
		}
	}
}

// TestRunTimeout: JobTimeoutSec= ends the job with result timeout and
// cancels the executor's context.
func TestRunTimeout(t *testing.T) {
	A, B := "a.service", "b.service"
	g := newGraph().dep(B, unit.Requires, A).dep(B, unit.After, A).dep(A, unit.OnFailure, "rescue.service")
	g.units[A].JobTimeout = 20 * time.Millisecond
	x := newExec(g)
	x.gate[A] = make(chan struct{}) // never opened
	e := New(g, x, nil)
	jb := must(t)(e.Enqueue(context.Background(), B, Start, Replace))
	ja := e.installedJob(A)
	run(t, e)
	if r := wait(t, e, ja); r != Timeout {
		t.Errorf("a result %s, want timeout", r)
	}
	if r := wait(t, e, jb); r != Dependency {
		t.Errorf("b result %s, want dependency", r)
	}
	eventually(t, "executor call for a returned", func() bool {
		for _, c := range x.calls() {
			if c == "end start "+A {
				return true
			}
		}
		return false
	})
	eventually(t, "OnFailure= unit started after the timeout", func() bool {
		return g.ActiveState("rescue.service") == "active"
	})
}

// TestRunCancel: cancelling a waiting job gives canceled and fails the jobs
// that require it.
func TestRunCancel(t *testing.T) {
	A, B, C := "a.service", "b.service", "c.service"
	g := newGraph().dep(B, unit.Requires, A).dep(B, unit.After, A).dep(A, unit.After, C).dep(A, unit.Wants, C)
	x := newExec(g)
	x.gate[C] = make(chan struct{})
	x.entered = make(chan string, 10)
	e := New(g, x, nil)
	run(t, e)
	jb := must(t)(e.Enqueue(context.Background(), B, Start, Replace))
	if s := <-x.entered; s != "start "+C {
		t.Fatalf("first call %q", s)
	}
	ja := e.installedJob(A)
	if err := e.Cancel(ja.ID()); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, e, ja); r != Canceled {
		t.Errorf("a result %s", r)
	}
	if r := wait(t, e, jb); r != Dependency {
		t.Errorf("b result %s", r)
	}
	if err := e.Cancel(ja.ID()); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("second cancel: %v", err)
	}
	close(x.gate[C])
}

// TestRunRerunMerged: a reload merged into a running start runs after it.
func TestRunRerunMerged(t *testing.T) {
	A := "a.service"
	g := newGraph().add(A)
	g.units[A].Service = &unit.Service{ExecReload: []unit.Command{{Path: "/bin/true"}}}
	x := newExec(g)
	x.gate[A] = make(chan struct{})
	x.entered = make(chan string, 10)
	e := New(g, x, nil)
	run(t, e)
	ctx := context.Background()
	j := must(t)(e.Enqueue(ctx, A, Start, Replace))
	<-x.entered
	g.set(A, "activating")
	j2 := must(t)(e.Enqueue(ctx, A, Reload, Replace))
	if j2 != j {
		t.Fatalf("reload did not merge into the running start")
	}
	close(x.gate[A])
	<-x.entered
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	c := x.calls()
	if index(t, c, "end start "+A) > index(t, c, "begin reload "+A) {
		t.Errorf("reload did not follow start: %v", c)
	}
}

// TestFollowUps: state changes not caused by a job stop BindsTo= units and
// start OnFailure=/OnSuccess= units.
func TestFollowUps(t *testing.T) {
	A, B, F, S := "a.service", "b.service", "fail.service", "ok.service"
	g := newGraph().dep(B, unit.BindsTo, A).dep(A, unit.OnFailure, F).dep(A, unit.OnSuccess, S)
	g.states[A], g.states[B] = "active", "active"
	x := newExec(g)
	e := New(g, x, nil)
	run(t, e)

	g.set(A, "failed")
	e.UnitChanged(A, "active", "failed", false)
	eventually(t, "b stopped and fail.service started", func() bool {
		return g.ActiveState(B) == "inactive" && g.ActiveState(F) == "active"
	})
	if g.ActiveState(S) != "inactive" {
		t.Errorf("OnSuccess= unit started on failure")
	}

	g.set(A, "inactive")
	g.set(B, "active")
	e.UnitChanged(A, "active", "inactive", true)
	eventually(t, "ok.service started", func() bool { return g.ActiveState(S) == "active" })
	if g.ActiveState(B) != "active" {
		t.Errorf("BindsTo= unit stopped although a job stopped a")
	}
}

// TestRunParkedVerify: verify-active on an activating unit waits for the
// unit's next state change.
func TestRunParkedVerify(t *testing.T) {
	A := "a.service"
	g := newGraph().add(A)
	g.states[A] = "activating"
	e := New(g, newExec(g), nil)
	run(t, e)
	j := must(t)(e.Enqueue(context.Background(), A, VerifyActive, Replace))
	eventually(t, "job parked", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return j.parked
	})
	g.set(A, "active")
	e.UnitChanged(A, "activating", "active", false)
	if r := wait(t, e, j); r != Done {
		t.Errorf("result %s", r)
	}
}

type fakeRecorder struct {
	puts, dels int
	live       map[uint64]Info
}

func (r *fakeRecorder) PutJob(i Info) error       { r.puts++; r.live[i.ID] = i; return nil }
func (r *fakeRecorder) DeleteJob(id uint64) error { r.dels++; delete(r.live, id); return nil }

func TestRecorder(t *testing.T) {
	A, B := "a.service", "b.service"
	g := newGraph().dep(A, unit.Requires, B)
	rec := &fakeRecorder{live: map[uint64]Info{}}
	e := New(g, newExec(g), nil, WithRecorder(rec))
	j := must(t)(e.Enqueue(context.Background(), A, Start, Replace))
	if len(rec.live) != 2 || rec.live[j.ID()].Unit != A || rec.live[j.ID()].Mode != Replace {
		t.Fatalf("recorded %v", rec.live)
	}
	run(t, e)
	wait(t, e, j)
	eventually(t, "records deleted", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(rec.live) == 0
	})
}

// installedJob is a test helper: the job installed for a unit.
func (e *Engine) installedJob(name string) *Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.installed[name]
}

// TestRunShutdown: when Run's ctx ends, running executor calls are
// cancelled, Run waits for them, and their jobs finish as canceled; jobs not
// started yet stay installed for the next Run.
func TestRunShutdown(t *testing.T) {
	A, B := "a.service", "b.service"
	g := newGraph().dep(B, unit.Requires, A).dep(B, unit.After, A)
	x := newExec(g)
	x.gate[A] = make(chan struct{}) // never opened: only ctx ends the call
	x.entered = make(chan string, 10)
	e := New(g, x, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	jb := must(t)(e.Enqueue(context.Background(), B, Start, Replace))
	ja := e.installedJob(A)
	<-x.entered
	cancel()
	<-done
	if r := wait(t, e, ja); r != Canceled {
		t.Errorf("a result %s", r)
	}
	if jb.Result() != "" {
		t.Errorf("b finished (%s) although it never ran", jb.Result())
	}
	if got := installed(e); got[B] != Start || len(got) != 1 {
		t.Errorf("installed after shutdown: %v", got)
	}
	if i, ok := e.JobOf(B); !ok || i.ID != jb.ID() || i.State != Waiting {
		t.Errorf("JobOf(b) = %+v, %v", i, ok)
	}
}

// TestRetroactiveStart: a unit that becomes active without a job (e.g.
// activated from outside) pulls in its requirements and wants, and stops
// the units it conflicts with.
func TestRetroactiveStart(t *testing.T) {
	A, R, W, C := "a.service", "req.service", "want.service", "conflict.service"
	g := newGraph().dep(A, unit.Requires, R).dep(A, unit.Wants, W).dep(A, unit.Conflicts, C)
	g.states[C] = "active"
	e := New(g, newExec(g), nil)
	run(t, e)
	g.set(A, "active")
	e.UnitChanged(A, "inactive", "active", false)
	eventually(t, "dependencies applied", func() bool {
		return g.ActiveState(R) == "active" && g.ActiveState(W) == "active" && g.ActiveState(C) == "inactive"
	})

	// The same change made by a job pulls nothing (the transaction did).
	// A later retroactive event on z shows when the first was handled,
	// since events are handled in order.
	g2 := newGraph().dep(A, unit.Requires, R).dep("z.service", unit.Wants, "zdep.service")
	e2 := New(g2, newExec(g2), nil)
	run(t, e2)
	g2.set(A, "active")
	e2.UnitChanged(A, "activating", "active", true)
	g2.set("z.service", "active")
	e2.UnitChanged("z.service", "inactive", "active", false)
	eventually(t, "later event handled", func() bool { return g2.ActiveState("zdep.service") == "active" })
	if _, queued := e2.JobOf(R); queued || g2.ActiveState(R) != "inactive" {
		t.Errorf("a job-made change pulled in its requirement")
	}
}

// A request by alias runs the job of the unit's real name, and finishes.
func TestEnqueueByAlias(t *testing.T) {
	g := newGraph().dep("multi-user.target", unit.Wants, "a.service")
	g.units["default.target"] = g.units["multi-user.target"] // the graph resolves the alias
	x := newExec(g)
	e := New(g, x, nil)
	run(t, e)
	j := must(t)(e.Enqueue(context.Background(), "default.target", Start, Replace))
	if j.Unit() != "multi-user.target" {
		t.Errorf("job is for %q, want the real name multi-user.target", j.Unit())
	}
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	if g.ActiveState("a.service") != "active" {
		t.Errorf("a.service is %s; the alias's wants were not pulled in", g.ActiveState("a.service"))
	}
}
