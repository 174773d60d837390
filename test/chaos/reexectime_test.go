//go:build integration

package chaos

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"corral.io/corral/test/node"
)

// TestReexecTime measures the time from `corralctl daemon-reexec` (the
// command started) to the CRI socket answering Version again on a fresh
// connection, with CORRAL_RECOVER_UNITS unit files loaded (default 10) of
// which CORRAL_RECOVER_RUNNING (default 100) run, CORRAL_RECOVER_ROUNDS
// times (default 3): the same set-up as TestRecoveryTime, which measures
// kill -9 instead (hack/bench/recover.sh runs both). The core keeps its PID
// and the services their processes. It prints one "reexec:" line and
// asserts nothing about the time.
func TestReexecTime(t *testing.T) {
	loaded := envInt("CORRAL_RECOVER_UNITS", 10)
	units := min(envInt("CORRAL_RECOVER_RUNNING", 100), loaded)
	rounds := envInt("CORRAL_RECOVER_ROUNDS", 3)
	files := map[string]string{}
	var wants []string
	for i := range loaded {
		name := fmt.Sprintf("b%05d.service", i)
		files[name] = fmt.Sprintf("[Service]\nExecStart=/bin/sleep %d\n", 300000+i)
		if i < units {
			wants = append(wants, name)
		}
	}
	files["bench.target"] = "[Unit]\nWants=" + strings.Join(wants, " ") + "\n"
	n := node.Start(t, bin, node.Options{Units: files, Target: "bench.target"})
	sock := filepath.Join(n.Root, "run", "corral", "cri.sock")
	deadline := time.Now().Add(time.Duration(30+units/20) * time.Second)
	for n.State("bench.target") != "active" || len(procsPrefix("30")) < units {
		if time.Now().After(deadline) {
			t.Fatalf("bench.target not active with %d services (have %d)", units, len(procsPrefix("30")))
		}
		time.Sleep(200 * time.Millisecond)
	}
	before := procsPrefix("30")
	core := agentPID(n)
	var times, ctlTimes []time.Duration
	execs := func() int { return strings.Count(n.Out.String(), "re-executing the core") }
	for range rounds {
		seen := execs()
		t0 := time.Now()
		// The agent replies once it stopped accepting: from then on a
		// fresh connection can only reach the new image.
		cmd := exec.Command(filepath.Join(n.Bin, "corralctl"), "--root", n.Root, "daemon-reexec")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		// Only a call started after the old image logged its exec can
		// be answered by the new one.
		for execs() == seen || criVersion(sock) != nil {
			if time.Since(t0) > 2*time.Minute {
				t.Fatal("CRI did not answer within 2 minutes after daemon-reexec")
			}
			time.Sleep(time.Millisecond)
		}
		times = append(times, time.Since(t0))
		if err := <-waited; err != nil {
			t.Fatalf("corralctl daemon-reexec: %v", err)
		}
		ctlTimes = append(ctlTimes, time.Since(t0))
		if p := agentPID(n); p != core {
			t.Fatalf("core PID %d after daemon-reexec, was %d", p, core)
		}
	}
	if after := procsPrefix("30"); !slices.Equal(before, after) {
		t.Errorf("service processes changed across %d re-execs: %d before, %d after", rounds, len(before), len(after))
	}
	slices.Sort(times)
	slices.Sort(ctlTimes)
	fmt.Printf("reexec: loaded=%d running=%d rounds=%d cri_min_ms=%d cri_median_ms=%d cri_max_ms=%d ctl_median_ms=%d\n", loaded, units, rounds,
		times[0].Milliseconds(), times[len(times)/2].Milliseconds(), times[len(times)-1].Milliseconds(), ctlTimes[len(ctlTimes)/2].Milliseconds())
}
