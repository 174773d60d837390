//go:build integration

// Package chaos kills the real core (corral-agent under `corral init`) with
// SIGKILL while it works and checks what issue 7 promises: every service
// keeps running with its PID, none is started twice, and exits that happen
// while no core runs reach the next core with their status.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/test/node"
)

var bin string

func TestMain(m *testing.M) {
	var err error
	if bin, err = node.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(bin)
	os.Exit(code)
}

// agentPID is the running corral-agent child of the node's supervisor, or 0.
func agentPID(n *node.Node) int {
	sup := n.Cmd.Process.Pid
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(corral-agent") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(sup) {
			return pid
		}
	}
	return 0
}

// killCore SIGKILLs the core and waits until a new one answers the API.
func killCore(t *testing.T, n *node.Node) {
	t.Helper()
	old := agentPID(n)
	if old == 0 {
		t.Fatal("no core running")
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n.Eventually("a new core answers", func() error {
		if p := agentPID(n); p == 0 || p == old {
			return fmt.Errorf("core %d not replaced yet", old)
		}
		_, err := n.Ctl("list-units")
		return err
	})
}

// procs returns the live (non-zombie) processes whose command line contains
// marker as a whole argument.
func procs(marker string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		found := false
		for _, a := range strings.Split(string(b), "\x00") {
			if a == marker {
				found = true
			}
		}
		if !found {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			s := string(st)
			if i := strings.LastIndexByte(s, ')'); i > 0 && strings.HasPrefix(s[i+1:], " Z") {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

func mainPID(t *testing.T, n *node.Node, unit string) int {
	t.Helper()
	p, err := strconv.Atoi(n.Prop(unit, "MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKillCoreKeepsServices: a simple service, one that exits with status
// 3 (Restart=on-failure) while the core is dead, and a oneshot with
// RemainAfterExit; kill -9 of the core; the new core must show the same
// main PIDs, start nothing twice, report the exit status 3 and restart that
// unit once.
func TestKillCoreKeepsServices(t *testing.T) {
	units := map[string]string{
		"simple.service": "[Service]\nExecStart=/bin/sleep 100001\n",
		"late.service": "[Service]\nExecStart=/bin/sh -c 'trap \"exit 3\" USR1; while :; do sleep 0.05; done' late-marker\n" +
			"Restart=on-failure\nRestartSec=100ms\n",
		"once.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo once-ran\n",
		"chaos.target": "[Unit]\nWants=simple.service late.service once.service\nAfter=simple.service late.service once.service\n",
	}
	n := node.Start(t, bin, node.Options{Units: units, Target: "chaos.target"})
	n.Eventually("all units active", func() error {
		for _, u := range []string{"simple.service", "late.service", "once.service", "chaos.target"} {
			if s := n.State(u); s != "active" {
				return fmt.Errorf("%s is %s", u, s)
			}
		}
		return nil
	})
	simple, late := mainPID(t, n, "simple.service"), mainPID(t, n, "late.service")
	onceRuns := func() int { return strings.Count(n.Must("logs", "-u", "once.service"), "once-ran") }
	if r := onceRuns(); r != 1 {
		t.Fatalf("oneshot ran %d times, want once", r)
	}

	killCore(t, n)
	// The late service exits now, with no core or a core that did not
	// spawn it: only the supervisor can reap it.
	if err := syscall.Kill(late, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}

	if got := mainPID(t, n, "simple.service"); got != simple {
		t.Errorf("simple.service main PID %d after the crash, want %d", got, simple)
	}
	if p := procs("100001"); len(p) != 1 {
		t.Errorf("simple.service has %d processes %v, want 1", len(p), p)
	}
	n.Eventually("late.service restarted after its exit", func() error {
		if r := n.Prop("late.service", "NRestarts"); r != "1" {
			return fmt.Errorf("NRestarts=%s", r)
		}
		if s := n.State("late.service"); s != "active" {
			return fmt.Errorf("late.service is %s", s)
		}
		return nil
	})
	if st := n.Prop("late.service", "ExecMainStatus"); st != "3" {
		t.Errorf("late.service ExecMainStatus=%s, want 3 (the status of the exit during the outage)", st)
	}
	if p := mainPID(t, n, "late.service"); p == late || p == 0 {
		t.Errorf("late.service main PID %d, want a new one (old %d)", p, late)
	}
	if p := procs("late-marker"); len(p) != 1 {
		t.Errorf("late.service has %d processes %v, want 1", len(p), p)
	}
	if s := n.State("once.service"); s != "active" {
		t.Errorf("once.service is %s after the crash, want active (exited)", s)
	}
	if r := onceRuns(); r != 1 {
		t.Errorf("oneshot ran %d times after the crash, want once", r)
	}
	if !strings.Contains(n.Out.String(), "recovery done") {
		t.Errorf("the new core logged no recovery")
	}
	n.Must("status", "simple.service")
	if testing.Verbose() {
		t.Log(n.Out.String())
	}
}

// TestChaosKillLoop starts and stops units through corralctl while another
// goroutine SIGKILLs the core at random moments (bounded: 100 kills or 150 s).
// Every operation is retried until a core acknowledges it (start and stop
// are idempotent), so the wanted state of every unit is known at the end:
// each wanted unit runs with the main PID it had when its start was
// acknowledged, no stopped unit has a process, and no unit was spawned more
// often than it went from stopped to started (each spawn writes a line).
func TestChaosKillLoop(t *testing.T) {
	const nUnits = 6
	units := map[string]string{}
	name := func(i int) string { return fmt.Sprintf("c%d.service", i) }
	// The marker (sleep's argument) is unique per test process, so that
	// runs in parallel do not count each other's processes.
	marker := func(i int) string { return strconv.Itoa(10_000_000 + os.Getpid()%1_000_000*10 + i) }
	// Spawns are counted in a file, which outlives every core.
	spawnDir := t.TempDir()
	for i := range nUnits {
		units[name(i)] = fmt.Sprintf("[Service]\nExecStart=/bin/sh -c 'echo spawned >>%s/%d; exec sleep %s'\n", spawnDir, i, marker(i))
	}
	n := node.Start(t, bin, node.Options{Units: units})

	var (
		mu       sync.Mutex
		want     = make([]bool, nUnits) // wanted running
		pids     = make([]int, nUnits)  // main PID when the start was acknowledged
		spawns   = make([]int, nUnits)  // stopped → started transitions
		ops      int
		retries  int
		kills    int
		stopLoop = make(chan struct{})
	)
	deadline := time.Now().Add(150 * time.Second)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the killer
		defer wg.Done()
		defer close(stopLoop)
		for kills < 100 && time.Now().Before(deadline) {
			time.Sleep(time.Duration(30+rand.IntN(250)) * time.Millisecond)
			p := agentPID(n)
			if p == 0 {
				continue // being restarted; wait for the next one
			}
			if syscall.Kill(p, syscall.SIGKILL) == nil {
				mu.Lock()
				kills++
				mu.Unlock()
			}
		}
	}()
	retry := func(args ...string) string {
		for {
			out, err := n.Ctl(args...)
			if err == nil {
				return out
			}
			mu.Lock()
			retries++
			mu.Unlock()
			if time.Now().After(deadline.Add(60 * time.Second)) {
				t.Errorf("corralctl %v never acknowledged: %v", args, err)
				return ""
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for loop := true; loop; {
		select {
		case <-stopLoop:
			loop = false
			continue
		default:
		}
		i := rand.IntN(nUnits)
		start := rand.IntN(2) == 0
		if start {
			retry("start", name(i))
		} else {
			retry("stop", name(i))
		}
		mu.Lock()
		ops++
		was := want[i]
		if start && !was {
			spawns[i]++
		}
		want[i] = start
		mu.Unlock()
		if !start {
			pids[i] = 0
			continue
		}
		out := retry("show", "-p", "MainPID", name(i))
		p, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(out), "MainPID="))
		if was && p != pids[i] {
			t.Errorf("%s: main PID changed from %d to %d while it should have kept running", name(i), pids[i], p)
		}
		pids[i] = p
	}
	wg.Wait()
	n.Eventually("the last core answers", func() error { _, err := n.Ctl("list-units"); return err })

	running, stopped := 0, 0
	for i := range nUnits {
		ps := procs(marker(i))
		st := n.State(name(i))
		got := n.Prop(name(i), "MainPID")
		if want[i] {
			running++
			if st != "active" || len(ps) != 1 || got != strconv.Itoa(pids[i]) {
				t.Errorf("%s: wanted running with PID %d; state %s, MainPID %s, processes %v", name(i), pids[i], st, got, ps)
			}
		} else {
			stopped++
			if st == "active" || len(ps) != 0 {
				t.Errorf("%s: wanted stopped; state %s, processes %v", name(i), st, ps)
			}
		}
		if t.Failed() {
			for _, p := range ps {
				cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p))
				st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
				t.Logf("%s: process %d: stat %s cgroup:\n%s", name(i), p, strings.TrimSpace(string(st)), cg)
			}
		}
		b, _ := os.ReadFile(fmt.Sprintf("%s/%d", spawnDir, i))
		if c := strings.Count(string(b), "spawned"); c != spawns[i] {
			t.Errorf("%s: spawned %d times, want %d (one per stopped→started)", name(i), c, spawns[i])
		}
	}
	t.Logf("chaos: %d core kills, %d acknowledged operations, %d calls retried during outages; at the end %d running (original PIDs), %d stopped",
		kills, ops, retries, running, stopped)
	if kills == 0 || ops == 0 {
		t.Errorf("the loop did nothing: %d kills, %d operations", kills, ops)
	}
}
