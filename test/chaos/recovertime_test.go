//go:build integration

package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/test/node"
)

// criVersion makes one CRI Version call on a fresh connection, as a
// kubelet that lost its connection would.
func criVersion(sock string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
	return err
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestRecoveryTime measures the time from SIGKILL of the core to the CRI
// socket answering Version again, with CORRAL_RECOVER_UNITS unit files
// loaded (default 10; hack/bench/recover.sh runs 10, 1000 and 10000), of
// which CORRAL_RECOVER_RUNNING (default 100, at most all) run as services
// wanted by one target, CORRAL_RECOVER_ROUNDS times (default 3). It also
// checks that the running services all kept their processes, none twice,
// and that the loaded count is what the core lists. It prints one
// "recover:" line; it asserts nothing about the time.
func TestRecoveryTime(t *testing.T) {
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
	if out := n.Must("list-units", "--all", "b*.service"); strings.Count(out, ".service") < loaded {
		t.Fatalf("the core lists %d of %d loaded units", strings.Count(out, ".service"), loaded)
	}
	if err := criVersion(sock); err != nil {
		t.Fatalf("CRI before the kill: %v", err)
	}

	var times, apiTimes []time.Duration
	for range rounds {
		old := agentPID(n)
		t0 := time.Now()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for {
			// A CRI answer from the old core before it died is impossible
			// after the kill returned, but its socket file outlives it:
			// only the new core answers.
			if criVersion(sock) == nil {
				break
			}
			if time.Since(t0) > 2*time.Minute {
				t.Fatal("CRI did not answer within 2 minutes after the kill")
			}
			time.Sleep(time.Millisecond)
		}
		times = append(times, time.Since(t0))
		if p := agentPID(n); p == old || p == 0 {
			t.Fatalf("answered by core %d, killed %d", p, old)
		}
		// The API answers only after re-adoption (manager.Ready); this
		// time includes corralctl's own start.
		n.Eventually("API answers", func() error { _, err := n.Ctl("is-active", "bench.target"); return err })
		apiTimes = append(apiTimes, time.Since(t0))
	}
	after := procsPrefix("30")
	if !slices.Equal(before, after) {
		t.Errorf("service processes changed across %d kills: %d before, %d after", rounds, len(before), len(after))
	}
	slices.Sort(times)
	slices.Sort(apiTimes)
	fmt.Printf("recover: loaded=%d running=%d rounds=%d cri_min_ms=%d cri_median_ms=%d cri_max_ms=%d api_median_ms=%d\n", loaded, units, rounds,
		times[0].Milliseconds(), times[len(times)/2].Milliseconds(), times[len(times)-1].Milliseconds(), apiTimes[len(apiTimes)/2].Milliseconds())
}

// procsPrefix lists `sleep 30xxxx` processes (this file's services), sorted.
func procsPrefix(prefix string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		a := strings.Split(string(b), "\x00")
		if len(a) >= 2 && a[0] == "/bin/sleep" && len(a[1]) == 6 && strings.HasPrefix(a[1], prefix) {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}
