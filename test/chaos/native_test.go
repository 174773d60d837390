//go:build integration

package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"corral.io/corral/test/node"
)

// crictlPath builds (or finds cached) the real crictl with hack/tools.
func crictlPath(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../hack/tools/crictl.sh").Output()
	if err != nil {
		t.Fatalf("hack/tools/crictl.sh: %v", err)
	}
	l := strings.Split(strings.TrimSpace(string(out)), "\n")
	return l[len(l)-1]
}

func crictl(t *testing.T, bin string, n *node.Node, args ...string) (string, error) {
	t.Helper()
	ep := "unix://" + filepath.Join(n.Root, "run", "corral", "cri.sock")
	cmd := exec.Command(bin, append([]string{"--config", "/dev/null", "-r", ep, "-i", ep, "-t", "20s"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// TestKillCoreKeepsNativeContainer: a native host-network pod with a
// container that prints a counter every 20 ms; kill -9 of the core twice.
// The container keeps its PID, `crictl ps` shows it Running, `crictl exec`
// works in it, its CRI log file has every number once, and a stop after
// recovery gives the right exit code (137 for the SIGKILL after the grace
// period is not what we ask: the shell exits 0 on TERM via trap).
func TestKillCoreKeepsNativeContainer(t *testing.T) {
	cb := crictlPath(t)
	n := node.Start(t, bin, node.Options{})
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	pod := filepath.Join(dir, "pod.json")
	ctr := filepath.Join(dir, "ctr.json")
	os.WriteFile(pod, []byte(fmt.Sprintf(`{"metadata":{"name":"chaos","namespace":"chaos","uid":"chaos-uid","attempt":0},
"log_directory":%q,"linux":{"security_context":{"namespace_options":{"network":2}}}}`, logDir)), 0o644)
	cmd, _ := json.Marshal([]string{"/bin/bash", "-c", `trap "exit 7" TERM; i=0; while :; do echo c$i; i=$((i+1)); sleep 0.02; done`, "native-chaos-marker"})
	os.WriteFile(ctr, []byte(fmt.Sprintf(`{"metadata":{"name":"counter"},"image":{"image":"localhost/corral/host:latest"},"command":%s,"log_path":"counter.log"}`, cmd)), 0o644)
	must := func(args ...string) string {
		t.Helper()
		out, err := crictl(t, cb, n, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	podID := must("runp", pod)
	ctrID := must("create", podID, ctr, pod)
	must("start", ctrID)
	t.Cleanup(func() { crictl(t, cb, n, "rmp", "-f", podID) })
	ps := procs("native-chaos-marker")
	if len(ps) != 1 {
		t.Fatalf("container processes %v", ps)
	}
	pid := ps[0]
	logFile := filepath.Join(logDir, "counter.log")
	counter := func() []int {
		b, _ := os.ReadFile(logFile)
		var out []int
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && f[1] == "stdout" && f[2] == "F" && strings.HasPrefix(f[3], "c") {
				v, _ := strconv.Atoi(f[3][1:])
				out = append(out, v)
			}
		}
		return out
	}
	for k := range 2 {
		before := len(counter())
		old := agentPID(n)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		n.Eventually("a new core answers", func() error {
			if p := agentPID(n); p == 0 || p == old {
				return fmt.Errorf("core %d not replaced yet", old)
			}
			_, err := crictl(t, cb, n, "version")
			return err
		})
		if out := must("ps", "-q", "--state", "Running", "--id", ctrID); out != ctrID {
			t.Fatalf("after kill %d: crictl ps --state Running = %q", k+1, out)
		}
		if out := must("exec", ctrID, "/bin/echo", "in-container"); out != "in-container" {
			t.Errorf("after kill %d: crictl exec = %q", k+1, out)
		}
		n.Eventually("container log grows", func() error {
			if c := len(counter()); c < before+30 {
				return fmt.Errorf("%d lines, %d before the kill", c, before)
			}
			return nil
		})
	}
	if ps := procs("native-chaos-marker"); len(ps) != 1 || ps[0] != pid {
		t.Errorf("container processes %v after the kills, want [%d]", ps, pid)
	}
	must("stop", "--timeout", "10", ctrID)
	out := must("inspect", "-o", "go-template", "--template", "{{.status.exitCode}} {{.status.state}}", ctrID)
	if out != "7 CONTAINER_EXITED" {
		t.Errorf("after stop: %q, want exit code 7 (the TERM trap), exited", out)
	}
	got := counter()
	for i, v := range got {
		if v != i {
			t.Fatalf("line %d of the CRI log is c%d (lost or duplicated lines; %d lines)", i, v, len(got))
		}
	}
	t.Logf("native container: same PID %d across 2 core kills, %d log lines none lost or duplicated", pid, len(got))
}
