package job

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"corral.io/corral/agent/unit"
)

// TestTransaction checks expansion, merging, conflicts, cycles and modes by
// the set of jobs installed (the engine is not running, so nothing runs).
func TestTransaction(t *testing.T) {
	A, B, C, D, T := "a.service", "b.service", "c.service", "d.service", "t.target"
	tests := []struct {
		name    string
		graph   func(g *fakeGraph)
		unit    string
		typ     Type
		mode    Mode
		want    map[string]Type
		wantErr error
		errHas  []string // substrings the error must contain
		warns   int
		warnHas string // substring of the first warning
	}{
		{
			name: "start pulls Requires, BindsTo, Wants, Requisite and Conflicts",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B).dep(A, unit.BindsTo, C).dep(A, unit.Wants, D).
					dep(A, unit.Requisite, "r.service").dep(A, unit.Conflicts, "x.service")
				g.states["x.service"] = "active"
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start, B: Start, C: Start, D: Start, "r.service": VerifyActive, "x.service": Stop},
		},
		{
			name:  "requirements are pulled transitively",
			graph: func(g *fakeGraph) { g.dep(A, unit.Requires, B).dep(B, unit.Wants, C).dep(C, unit.Requires, D) },
			unit:  A, typ: Start,
			want: map[string]Type{A: Start, B: Start, C: Start, D: Start},
		},
		{
			name:  "missing Wants is ignored",
			graph: func(g *fakeGraph) { g.dep(A, unit.Wants, "missing.service").dep(A, unit.Wants, B) },
			unit:  A, typ: Start,
			want: map[string]Type{A: Start, B: Start},
		},
		{
			name:  "missing Requires fails naming both units",
			graph: func(g *fakeGraph) { g.dep(A, unit.Requires, "missing.service") },
			unit:  A, typ: Start,
			wantErr: ErrNotFound, errHas: []string{A, "missing.service"},
		},
		{
			name: "a wanted unit whose requirement is missing is dropped whole",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Wants, B).dep(B, unit.Requires, C).dep(C, unit.Requires, "missing.service").dep(A, unit.Requires, D)
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start, D: Start},
		},
		{
			name: "masked anchor",
			graph: func(g *fakeGraph) {
				g.add(A)
				g.units[A].LoadState = unit.LoadMasked
			},
			unit: A, typ: Start, wantErr: ErrMasked, errHas: []string{A},
		},
		{
			name: "required unit with a bad setting",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B)
				g.units[B].LoadState = unit.LoadBadSetting
				g.units[B].LoadError = "b.service:3: bad Type="
			},
			unit: A, typ: Start, wantErr: ErrBadSetting, errHas: []string{A, B, "b.service:3"},
		},
		{
			name: "stop of a masked unit is fine",
			graph: func(g *fakeGraph) {
				g.add(A)
				g.units[A].LoadState = unit.LoadMasked
				g.states[A] = "active"
			},
			unit: A, typ: Stop, want: map[string]Type{A: Stop},
		},
		{
			name: "stop propagates to RequiredBy, BoundBy and PartOf units",
			graph: func(g *fakeGraph) {
				g.dep(B, unit.Requires, A).dep(C, unit.BindsTo, A).dep(D, unit.PartOf, A).dep(T, unit.Wants, A)
				for _, n := range []string{A, B, C, D, T} {
					g.states[n] = "active"
				}
			},
			unit: A, typ: Stop,
			want: map[string]Type{A: Stop, B: Stop, C: Stop, D: Stop},
		},
		{
			name: "stop of inactive dependents is dropped as redundant",
			graph: func(g *fakeGraph) {
				g.dep(B, unit.Requires, A).dep(C, unit.Requires, A)
				g.states[A], g.states[B] = "active", "active"
			},
			unit: A, typ: Stop,
			want: map[string]Type{A: Stop, B: Stop},
		},
		{
			name: "restart propagates try-restart to active dependents only",
			graph: func(g *fakeGraph) {
				g.dep(B, unit.Requires, A).dep(C, unit.PartOf, A)
				g.states[A], g.states[B] = "active", "active"
			},
			unit: A, typ: Restart,
			want: map[string]Type{A: Restart, B: Restart},
		},
		{
			name: "try-restart of an inactive unit is a nop",
			graph: func(g *fakeGraph) {
				g.dep(B, unit.Requires, A)
			},
			unit: A, typ: TryRestart,
			want: map[string]Type{},
		},
		{
			name: "reload propagates to active reloadable units",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.PropagatesReloadTo, B).dep(A, unit.PropagatesReloadTo, C).dep(A, unit.PropagatesReloadTo, D)
				for _, n := range []string{A, B, C} {
					g.units[n].Service = &unit.Service{ExecReload: []unit.Command{{Path: "/bin/true"}}}
				}
				g.states[A], g.states[B] = "active", "active"
			},
			unit: A, typ: Reload,
			want: map[string]Type{A: Reload, B: Reload},
		},
		{
			name:  "reload of a unit without ExecReload is not applicable",
			graph: func(g *fakeGraph) { g.add(A) },
			unit:  A, typ: Reload, wantErr: ErrNotApplicable,
		},
		{
			name: "reload-or-restart without ExecReload restarts",
			graph: func(g *fakeGraph) {
				g.add(A)
				g.states[A] = "active"
			},
			unit: A, typ: ReloadOrRestart, want: map[string]Type{A: Restart},
		},
		{
			name: "active requirements are dropped, the anchor stays",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B).dep(A, unit.Requires, C)
				g.states[A], g.states[B] = "active", "active"
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start, C: Start},
		},
		{
			name: "start and verify-active merge into start",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B).dep(A, unit.Requisite, B)
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start, B: Start},
		},
		{
			name: "wanted start conflicting with a required stop is dropped",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Wants, B).dep(A, unit.Requires, C).dep(C, unit.Conflicts, B)
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start, C: Start}, warns: 1,
		},
		{
			name: "required start conflicting with a required stop fails",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B).dep(A, unit.Conflicts, B)
			},
			unit: A, typ: Start, wantErr: ErrConflict, errHas: []string{B, "start", "stop"},
		},
		{
			name: "ordering cycle broken by dropping a wanted job",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Wants, B).dep(A, unit.After, B).dep(B, unit.After, A)
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start}, warns: 1, warnHas: "dropped job b.service/start",
		},
		{
			name: "ordering cycle of required jobs fails with the cycle",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B).dep(B, unit.Requires, C).
					dep(A, unit.After, B).dep(B, unit.After, C).dep(C, unit.After, A)
			},
			unit: A, typ: Start, wantErr: ErrCycle, errHas: []string{A, B, C},
		},
		{
			name: "long cycle broken at the wanted job only",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B).dep(B, unit.Wants, C).dep(C, unit.Requires, D).
					dep(A, unit.After, B).dep(B, unit.After, C).dep(C, unit.After, D).dep(D, unit.After, A)
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start, B: Start}, warns: 1, warnHas: "dropped job c.service/start",
		},
		{
			name: "stop and start ordered both ways are no cycle",
			graph: func(g *fakeGraph) {
				// a Before b and b Before... only one direction, but stop
				// b/start a reverses the order; no cycle must be reported.
				g.dep(A, unit.Conflicts, B).dep(A, unit.Before, B)
				g.states[B] = "active"
			},
			unit: A, typ: Start,
			want: map[string]Type{A: Start, B: Stop},
		},
		{
			name: "ignore-requirements installs only the anchor",
			graph: func(g *fakeGraph) {
				g.dep(A, unit.Requires, B).dep(A, unit.Wants, C)
			},
			unit: A, typ: Start, mode: IgnoreRequirements,
			want: map[string]Type{A: Start},
		},
		{
			name: "isolate stops what the target does not pull",
			graph: func(g *fakeGraph) {
				g.dep(T, unit.Wants, A).dep(T, unit.Requires, B)
				g.units[T].AllowIsolate = true
				g.add(C, D, "keep.service", "s.socket", "s.service")
				g.dep(T, unit.Wants, "s.socket")
				g.dep("s.socket", unit.Triggers, "s.service")
				g.units["keep.service"].IgnoreOnIsolate = true
				for _, n := range []string{A, C, "keep.service", "s.socket", "s.service"} {
					g.states[n] = "active"
				}
			},
			unit: T, typ: Start, mode: Isolate,
			want: map[string]Type{T: Start, B: Start, C: Stop},
		},
		{
			name:  "isolate needs AllowIsolate",
			graph: func(g *fakeGraph) { g.add(T) },
			unit:  T, typ: Start, mode: Isolate, wantErr: ErrIsolate,
		},
		{
			name: "RefuseManualStart",
			graph: func(g *fakeGraph) {
				g.add(A)
				g.units[A].RefuseManualStart = true
			},
			unit: A, typ: Start, wantErr: ErrRefused,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraph()
			tc.graph(g)
			e := New(g, newExec(g), nil)
			j, err := e.Enqueue(context.Background(), tc.unit, tc.typ, tc.mode)
			if tc.wantErr != nil || err != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %q", err, s)
					}
				}
				if len(e.Jobs()) != 0 {
					t.Errorf("failed transaction left jobs installed: %v", e.Jobs())
				}
				return
			}
			if diff := cmp.Diff(tc.want, installed(e)); diff != "" {
				t.Errorf("installed jobs (-want +got):\n%s", diff)
			}
			if got := len(j.Warnings()); got != tc.warns {
				t.Errorf("warnings = %q, want %d", j.Warnings(), tc.warns)
			}
			if tc.warnHas != "" && (len(j.Warnings()) == 0 || !strings.Contains(j.Warnings()[0], tc.warnHas)) {
				t.Errorf("warnings = %q, want one containing %q", j.Warnings(), tc.warnHas)
			}
		})
	}
}

// TestModes checks how a transaction treats jobs that are already installed.
func TestModes(t *testing.T) {
	A, B, C := "a.service", "b.service", "c.service"
	ctx := context.Background()

	t.Run("fail refuses to replace a conflicting job", func(t *testing.T) {
		g := newGraph().add(A)
		e := New(g, newExec(g), nil)
		must(t)(e.Enqueue(ctx, A, Start, Replace))
		_, err := e.Enqueue(ctx, A, Stop, Fail)
		if !errors.Is(err, ErrDestructive) || !strings.Contains(err.Error(), A) {
			t.Fatalf("err = %v, want ErrDestructive naming %s", err, A)
		}
		if diff := cmp.Diff(map[string]Type{A: Start}, installed(e)); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("fail drops a wanted job instead of replacing", func(t *testing.T) {
		g := newGraph().dep(A, unit.Wants, B).dep(C, unit.Conflicts, B)
		g.states[B] = "active"
		e := New(g, newExec(g), nil)
		must(t)(e.Enqueue(ctx, C, Start, Replace)) // installs stop b
		must(t)(e.Enqueue(ctx, A, Start, Fail))
		if diff := cmp.Diff(map[string]Type{A: Start, B: Stop, C: Start}, installed(e)); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("replace cancels the conflicting job", func(t *testing.T) {
		g := newGraph().add(A)
		e := New(g, newExec(g), nil)
		old := must(t)(e.Enqueue(ctx, A, Start, Replace))
		must(t)(e.Enqueue(ctx, A, Stop, Replace))
		if r := wait(t, e, old); r != Canceled {
			t.Errorf("replaced job result = %s, want canceled", r)
		}
		if diff := cmp.Diff(map[string]Type{A: Stop}, installed(e)); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("merging returns the installed job", func(t *testing.T) {
		g := newGraph().add(A)
		g.units[A].Service = &unit.Service{ExecReload: []unit.Command{{Path: "/bin/true"}}}
		g.states[A] = "activating"
		e := New(g, newExec(g), nil)
		j1 := must(t)(e.Enqueue(ctx, A, Start, Replace))
		j2 := must(t)(e.Enqueue(ctx, A, Reload, Fail))
		if j1 != j2 {
			t.Fatalf("merge created a second job %d besides %d", j2.ID(), j1.ID())
		}
		if j1.Type() != ReloadOrStart {
			t.Errorf("merged type = %s, want reload-or-start", j1.Type())
		}
	})
	t.Run("flush cancels unrelated jobs", func(t *testing.T) {
		g := newGraph().add(A, B)
		e := New(g, newExec(g), nil)
		old := must(t)(e.Enqueue(ctx, A, Start, Replace))
		must(t)(e.Enqueue(ctx, B, Start, Flush))
		if r := wait(t, e, old); r != Canceled {
			t.Errorf("flushed job result = %s", r)
		}
		if diff := cmp.Diff(map[string]Type{B: Start}, installed(e)); diff != "" {
			t.Error(diff)
		}
	})
	t.Run("ignore-dependencies ignores ordering", func(t *testing.T) {
		g := newGraph().dep(A, unit.After, B).dep(A, unit.Requires, B)
		e := New(g, newExec(g), nil)
		must(t)(e.Enqueue(ctx, B, Start, Replace))
		j := must(t)(e.Enqueue(ctx, A, Start, IgnoreDependencies))
		e.mu.Lock()
		ok := e.runnableLocked(e.installed[A])
		e.mu.Unlock()
		if !ok || j.Unit() != A {
			t.Error("ignore-dependencies job waits for ordering")
		}
	})
	t.Run("invalid mode", func(t *testing.T) {
		g := newGraph().add(A)
		e := New(g, newExec(g), nil)
		if _, err := e.Enqueue(ctx, A, Start, "bogus"); !errors.Is(err, ErrInvalidMode) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestMergeTable(t *testing.T) {
	tests := []struct {
		a, b Type
		want Type
		ok   bool
	}{
		{Start, VerifyActive, Start, true},
		{Reload, Start, ReloadOrStart, true},
		{Restart, Start, Restart, true},
		{Restart, Reload, Restart, true},
		{VerifyActive, Reload, Reload, true},
		{ReloadOrStart, VerifyActive, ReloadOrStart, true},
		{Stop, Stop, Stop, true},
		{Nop, Stop, Stop, true},
		{Start, Stop, "", false},
		{Stop, Restart, "", false},
		{Reload, Stop, "", false},
	}
	for _, tc := range tests {
		for _, p := range [][2]Type{{tc.a, tc.b}, {tc.b, tc.a}} {
			got, ok := merge(p[0], p[1])
			if got != tc.want || ok != tc.ok {
				t.Errorf("merge(%s, %s) = %s, %v; want %s, %v", p[0], p[1], got, ok, tc.want, tc.ok)
			}
		}
	}
}
