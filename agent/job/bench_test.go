package job

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"corral.io/corral/agent/unit"
)

// benchGraph builds 10,000 units. Units 0..pulled-1 form a DAG closed
// under requirements (each wants the next, plus three random Requires= or
// Wants= to later units, each with After=), reached from bench.target. The
// other units depend on random units anywhere, so the pulled ones also carry
// inverse dependencies (RequiredBy=, Before=) that expansion must skip.
func benchGraph(total, pulled int) *fakeGraph {
	r := rand.New(rand.NewPCG(1, 2))
	g := newGraph()
	name := func(i int) string { return fmt.Sprintf("u%05d.service", i) }
	for i := range total {
		g.add(name(i))
	}
	kinds := []unit.Dep{unit.Requires, unit.Wants, unit.Wants}
	for i := range pulled {
		if i+1 < pulled {
			g.dep(name(i), unit.Wants, name(i+1))
			g.dep(name(i), unit.After, name(i+1))
		}
		for range 3 {
			if i+1 >= pulled {
				break
			}
			j := i + 1 + r.IntN(min(100, pulled-i-1))
			g.dep(name(i), kinds[r.IntN(len(kinds))], name(j))
			g.dep(name(i), unit.After, name(j))
		}
	}
	for i := pulled; i < total; i++ {
		for range 3 {
			j := r.IntN(total)
			if j == i {
				continue
			}
			g.dep(name(i), kinds[r.IntN(len(kinds))], name(j))
			g.dep(name(i), unit.After, name(j))
		}
	}
	g.dep("bench.target", unit.Wants, name(0))
	g.dep("bench.target", unit.After, name(0))
	return g
}

func BenchmarkTransaction1000of10000(b *testing.B) {
	g := benchGraph(10000, 1000)
	x := newExec(g)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e := New(g, x, nil)
		if _, err := e.Enqueue(ctx, "bench.target", Start, Replace); err != nil {
			b.Fatal(err)
		}
		if n := len(e.installed); n != 1001 {
			b.Fatalf("%d jobs installed, want 1001", n)
		}
	}
}

// TestBenchGraphRuns runs the benchmark's transaction to completion, so the
// engine is shown to handle a large transaction, not just to install it.
func TestBenchGraphRuns(t *testing.T) {
	g := benchGraph(3000, 300)
	x := newExec(g)
	e := New(g, x, nil)
	j := must(t)(e.Enqueue(context.Background(), "bench.target", Start, Replace))
	run(t, e)
	if r := wait(t, e, j); r != Done {
		t.Fatalf("result %s", r)
	}
	eventually(t, "all jobs done", func() bool { return len(e.Jobs()) == 0 })
	c := x.calls()
	if got := len(c); got != 2*301 {
		t.Errorf("%d executor calls, want %d", got, 2*301)
	}
	// Every After= edge among pulled units was honoured.
	for i := range 299 {
		a, b := fmt.Sprintf("u%05d.service", i), fmt.Sprintf("u%05d.service", i+1)
		if index(t, c, "end start "+b) > index(t, c, "begin start "+a) {
			t.Fatalf("%s started before %s (After=) finished", a, b)
		}
	}
}
