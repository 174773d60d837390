//go:build integration

package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"corral.io/corral/test/node"
)

// counterLines reads the numbers a counter service printed, in log order,
// from its log file (the store's on-disk format: `<time> <stream> <msg>`).
func counterLines(t *testing.T, n *node.Node, unit string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.Root, "var", "log", "corral", unit, "current"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []int
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[1] != "stdout" || !strings.HasPrefix(f[2], "n") {
			continue
		}
		v, err := strconv.Atoi(f[2][1:])
		if err != nil {
			t.Fatalf("log line %q", l)
		}
		out = append(out, v)
	}
	return out
}

// TestLogsSurviveCoreKill: a service prints a counter every 10 ms on stdout
// (and a line on stderr every 100); the core is killed with SIGKILL twice
// while it writes. The service must keep running with the same PID (no
// SIGPIPE: its log pipe kept a reader, the process itself), and its log
// must hold every number exactly once, in order, including those written
// while no core ran (they waited in the pipe and were drained by the next
// core after it took the read end back with pidfd_getfd).
func TestLogsSurviveCoreKill(t *testing.T) {
	const unit = "counter.service"
	units := map[string]string{
		unit: "[Service]\nExecStart=/bin/bash -c 'i=0; while :; do echo n$i; if ((i % 100 == 0)); then echo e$i >&2; fi; i=$((i+1)); sleep 0.01; done' counter-marker\n",
	}
	n := node.Start(t, bin, node.Options{Units: units})
	n.Must("start", unit)
	pid := mainPID(t, n, unit)
	n.Eventually("first lines logged", func() error {
		if got := counterLines(t, n, unit); len(got) < 20 {
			return fmt.Errorf("%d lines", len(got))
		}
		return nil
	})
	for range 2 {
		old := agentPID(n)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		atKill := len(counterLines(t, n, unit))
		n.Eventually("a new core answers", func() error {
			if p := agentPID(n); p == 0 || p == old {
				return fmt.Errorf("core %d not replaced yet", old)
			}
			_, err := n.Ctl("list-units")
			return err
		})
		n.Eventually("lines logged after the kill", func() error {
			if got := len(counterLines(t, n, unit)); got < atKill+50 {
				return fmt.Errorf("%d lines, %d at the kill", got, atKill)
			}
			return nil
		})
	}
	if got := mainPID(t, n, unit); got != pid {
		t.Errorf("main PID %d after the kills, want %d (the service died)", got, pid)
	}
	if s := n.State(unit); s != "active" {
		t.Errorf("%s is %s", unit, s)
	}
	if p := procs("counter-marker"); len(p) != 1 || p[0] != pid {
		t.Errorf("counter processes %v, want [%d]", p, pid)
	}
	n.Must("stop", unit)
	got := counterLines(t, n, unit)
	for i, v := range got {
		if v != i {
			t.Fatalf("line %d of the log is n%d (lost or duplicated lines around it; %d lines)", i, v, len(got))
		}
	}
	log := n.Must("logs", "-u", unit)
	if !strings.Contains(log, "e100") {
		t.Errorf("stderr lines missing from the log:\n%s", log)
	}
	t.Logf("counter: %d lines across 2 core kills, none lost or duplicated", len(got))
}
