// Command cribench times RunPodSandbox + CreateContainer + StartContainer
// over the CRI, the way kubelet calls them, against several endpoints in the
// same run (iterations interleaved, so load hits all alike), and prints the
// medians per step and the ratio of each target to the first. Cleanup
// (stop/remove) is outside the timed region. hack/bench/cri.sh drives it
// against Corral's native handler and containerd+runc.
//
//	cribench -n 30 -net node \
//	  -target 'native=unix:///ROOT/run/corral/cri.sock,native,localhost/corral/host:latest,/bin/sleep' \
//	  -target 'runc=unix:///CTD/containerd.sock,,registry.k8s.io/e2e-test-images/busybox:1.29-2,sleep'
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type target struct {
	name, endpoint, handler, image, sleep string
	rt                                    runtimeapi.RuntimeServiceClient
	samples                               [][4]time.Duration // runp, create, start, total
}

type targets []*target

func (ts *targets) String() string { return fmt.Sprint(len(*ts)) }
func (ts *targets) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	f := strings.Split(rest, ",")
	if !ok || len(f) != 4 {
		return fmt.Errorf("want NAME=ENDPOINT,HANDLER,IMAGE,SLEEP_BINARY, got %q", v)
	}
	*ts = append(*ts, &target{name: name, endpoint: f[0], handler: f[1], image: f[2], sleep: f[3]})
	return nil
}

func main() {
	var ts targets
	n := flag.Int("n", 30, "iterations per target")
	netMode := flag.String("net", "node", "pod network: node (host network) or pod (CNI)")
	logDir := flag.String("logdir", "", "pod log directory (default: a temp dir)")
	flag.Var(&ts, "target", "NAME=ENDPOINT,HANDLER,IMAGE,SLEEP_BINARY (repeatable; the first is the baseline of the ratio)")
	flag.Parse()
	if len(ts) == 0 {
		fmt.Fprintln(os.Stderr, "cribench: at least one -target")
		os.Exit(2)
	}
	mode := runtimeapi.NamespaceMode_NODE
	if *netMode == "pod" {
		mode = runtimeapi.NamespaceMode_POD
	}
	if *logDir == "" {
		d, err := os.MkdirTemp("/var/tmp", "cribench-logs-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(d)
		*logDir = d
	}
	ctx := context.Background()
	for _, t := range ts {
		conn, err := grpc.NewClient(t.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fail(err)
		}
		defer conn.Close()
		t.rt = runtimeapi.NewRuntimeServiceClient(conn)
		if _, err := t.rt.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
			fail(fmt.Errorf("%s: %w", t.name, err))
		}
	}
	// One untimed warm-up round, then interleaved timed rounds.
	for i := -1; i < *n; i++ {
		for _, t := range ts {
			d, err := t.once(ctx, i, mode, *logDir)
			if err != nil {
				fail(fmt.Errorf("%s iteration %d: %w", t.name, i, err))
			}
			if i >= 0 {
				t.samples = append(t.samples, d)
			}
		}
	}
	base := median(ts[0].samples, 3)
	fmt.Printf("%-8s %10s %10s %10s %10s %10s %8s\n", "target", "runp", "create", "start", "total", "total-p90", "ratio")
	for _, t := range ts {
		tot := median(t.samples, 3)
		fmt.Printf("%-8s %10s %10s %10s %10s %10s %8.3f\n", t.name, ms(median(t.samples, 0)), ms(median(t.samples, 1)),
			ms(median(t.samples, 2)), ms(tot), ms(pct(t.samples, 3, 0.9)), float64(tot)/float64(base))
	}
}

// once runs one pod with one container and returns the step times; the
// pod is removed afterwards, untimed.
func (t *target) once(ctx context.Context, i int, mode runtimeapi.NamespaceMode, logDir string) ([4]time.Duration, error) {
	var d [4]time.Duration
	uid := fmt.Sprintf("bench-%s-%d-%d", t.name, os.Getpid(), i+1)
	pc := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: uid, Namespace: "bench", Uid: uid},
		LogDirectory: filepath.Join(logDir, uid),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: mode},
		}},
	}
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:    &runtimeapi.ImageSpec{Image: t.image},
		Command:  []string{t.sleep, "3600"},
		LogPath:  "c.log",
	}
	t0 := time.Now()
	run, err := t.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pc, RuntimeHandler: t.handler})
	if err != nil {
		return d, err
	}
	t1 := time.Now()
	defer func() {
		t.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId})
		t.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId})
	}()
	cr, err := t.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: cc, SandboxConfig: pc})
	if err != nil {
		return d, err
	}
	t2 := time.Now()
	if _, err := t.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return d, err
	}
	t3 := time.Now()
	return [4]time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t3.Sub(t0)}, nil
}

func median(s [][4]time.Duration, k int) time.Duration { return pct(s, k, 0.5) }

func pct(s [][4]time.Duration, k int, p float64) time.Duration {
	v := make([]time.Duration, len(s))
	for i := range s {
		v[i] = s[i][k]
	}
	sort.Slice(v, func(a, b int) bool { return v[a] < v[b] })
	return v[int(p*float64(len(v)-1)+0.5)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cribench:", err)
	os.Exit(1)
}
