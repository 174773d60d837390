package job

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral.io/corral/agent/unit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeGraph is a hand-written Graph: units are created by add or dep, and
// dep records the inverse kind as the real loader does.
type fakeGraph struct {
	mu     sync.Mutex
	units  map[string]*unit.Unit
	states map[string]string
}

func newGraph() *fakeGraph {
	return &fakeGraph{units: map[string]*unit.Unit{}, states: map[string]string{}}
}

func (g *fakeGraph) add(names ...string) *fakeGraph {
	for _, n := range names {
		if g.units[n] == nil {
			g.units[n] = &unit.Unit{Name: n, Type: unit.TypeOf(n), LoadState: unit.LoadLoaded, Deps: map[unit.Dep][]string{}}
		}
	}
	return g
}

func (g *fakeGraph) u(n string) *unit.Unit { g.add(n); return g.units[n] }

// dep adds "a d=b" and its inverse on b, creating both units, except
// units named "missing*", which stay not-found.
func (g *fakeGraph) dep(a string, d unit.Dep, b string) *fakeGraph {
	ua := g.u(a)
	if !strings.HasPrefix(b, "missing") {
		g.add(b)
	}
	ua.Deps[d] = append(ua.Deps[d], b)
	if ub := g.units[b]; ub != nil {
		if inv := d.Inverse(); inv != "" {
			ub.Deps[inv] = append(ub.Deps[inv], a)
		}
	}
	return g
}

func (g *fakeGraph) Unit(name string) *unit.Unit {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.units[name]; u != nil {
		return u
	}
	return &unit.Unit{Name: name, LoadState: unit.LoadNotFound}
}

func (g *fakeGraph) ActiveState(name string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.states[name]; ok {
		return s
	}
	return "inactive"
}

func (g *fakeGraph) set(name, state string) {
	g.mu.Lock()
	g.states[name] = state
	g.mu.Unlock()
}

func (g *fakeGraph) Names() []string {
	var out []string
	for n := range g.units {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// fakeExec records calls as "begin start a"/"end start a" and moves the
// fake graph's states like a real unit would. Units listed in gate block
// until their channel is closed (or ctx ends); errs chooses return values.
type fakeExec struct {
	g       *fakeGraph
	mu      sync.Mutex
	log     []string
	errs    map[string]error
	gate    map[string]chan struct{}
	entered chan string // receives "start a" on entry, if non-nil
}

func newExec(g *fakeGraph) *fakeExec {
	return &fakeExec{g: g, errs: map[string]error{}, gate: map[string]chan struct{}{}}
}

func (x *fakeExec) note(s string) {
	x.mu.Lock()
	x.log = append(x.log, s)
	x.mu.Unlock()
}

func (x *fakeExec) calls() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.log...)
}

func (x *fakeExec) do(ctx context.Context, op, name, okState, failState string) error {
	x.note("begin " + op + " " + name)
	defer x.note("end " + op + " " + name)
	if x.entered != nil {
		x.entered <- op + " " + name
	}
	x.mu.Lock()
	gate := x.gate[name]
	err := x.errs[op+" "+name]
	x.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		if failState != "" {
			x.g.set(name, failState)
		}
		return err
	}
	x.g.set(name, okState)
	return nil
}

func (x *fakeExec) Start(ctx context.Context, name string) error {
	return x.do(ctx, "start", name, "active", "failed")
}
func (x *fakeExec) Stop(ctx context.Context, name string) error {
	return x.do(ctx, "stop", name, "inactive", "failed")
}
func (x *fakeExec) Reload(ctx context.Context, name string) error {
	return x.do(ctx, "reload", name, "active", "")
}

// index returns the position of s in the call log, failing if absent.
func index(t *testing.T, calls []string, s string) int {
	t.Helper()
	for i, c := range calls {
		if c == s {
			return i
		}
	}
	t.Fatalf("call %q not found in %v", s, calls)
	return -1
}

func installed(e *Engine) map[string]Type {
	out := map[string]Type{}
	for _, i := range e.Jobs() {
		out[i.Unit] = i.Type
	}
	return out
}

// run starts the engine's loop and returns a stop function that waits for
// it to return.
func run(t *testing.T, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func wait(t *testing.T, e *Engine, j *Job) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := e.Wait(ctx, j)
	if err != nil {
		t.Fatalf("job %d (%s %s) did not finish: %v; calls so far", j.ID(), j.Type(), j.Unit(), err)
	}
	return r
}

// eventually polls cond with a generous deadline (only to avoid hangs).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var errBoom = errors.New("boom")

func must(t *testing.T) func(*Job, error) *Job {
	return func(j *Job, err error) *Job {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
}

func join(s []string) string { return strings.Join(s, "; ") }

var _ = fmt.Sprint
