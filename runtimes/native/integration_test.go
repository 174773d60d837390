//go:build integration

package native

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/agent/manager"
	"corral.io/corral/runtimes"
)

type env struct {
	m      *manager.Manager
	b      *Backend
	base   string // cgroup base of our pods
	logDir string
}

// newEnv runs a real manager (reaper, spawner, job engine, log store) on a
// temp root, and the backend on top of it, with pods under a unique cgroup.
func newEnv(t *testing.T, cniConf string) *env {
	t.Helper()
	root := t.TempDir()
	uniq := fmt.Sprintf("corral-native-test-%d", os.Getpid())
	m, err := manager.New(manager.Config{Root: root, CgroupBase: uniq + "/agent", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, "") }()
	confDir := filepath.Join(root, "net.d")
	os.MkdirAll(confDir, 0o755)
	if cniConf != "" {
		if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(cniConf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := New(m, m.DB(), Config{CgroupBase: uniq + "/kubepods", CNIConfDir: confDir, RunDir: filepath.Join(root, "run", "native"), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{m: m, b: b, base: uniq, logDir: filepath.Join(root, "pods")}
	select {
	case <-m.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the manager never became ready")
	}
	t.Cleanup(func() {
		for id := range b.pods {
			b.RemovePodSandbox(context.Background(), id)
		}
		cancel()
		<-done
		b.cg.Remove(uniq)
	})
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func podConfig(name string, logDir string, network runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Hostname:     name + "-host",
		LogDirectory: filepath.Join(logDir, name),
		Labels:       map[string]string{"app": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: network, Ipc: network, Pid: runtimeapi.NamespaceMode_NODE},
		}},
	}
}

func ctrConfig(name string, argv ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: HostImage},
		Command:  argv[:1],
		Args:     argv[1:],
		Envs:     []*runtimeapi.KeyValue{{Key: "FOO", Value: []byte("bar")}},
		LogPath:  name + "/0.log",
	}
}

func (e *env) status(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	st, err := e.b.ContainerStatus(context.Background(), id, false)
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return st.Status
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func TestHostNetworkPodLifecycle(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	b := e.b
	pcfg := podConfig("hostpod", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := b.RunPodSandbox(ctx, "pod1", pcfg, "native"); err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	podCg := e.base + "/kubepods/pod1"
	if _, err := os.Stat(b.cg.Path("pids", podCg)); err != nil {
		t.Fatalf("pod cgroup: %v", err)
	}

	// Bad input is refused before anything is created.
	bad := []struct {
		name string
		cfg  *runtimeapi.ContainerConfig
		want string
	}{
		{"other image", func() *runtimeapi.ContainerConfig {
			c := ctrConfig("x", "true")
			c.Image.Image = "busybox"
			return c
		}(), HostImage},
		{"no command", &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"}, Image: &runtimeapi.ImageSpec{Image: HostImage}}, "command is required"},
		{"escaping log path", func() *runtimeapi.ContainerConfig { c := ctrConfig("x", "true"); c.LogPath = "../../x.log"; return c }(), "leaves"},
		{"bidirectional mount", func() *runtimeapi.ContainerConfig {
			c := ctrConfig("x", "true")
			c.Mounts = []*runtimeapi.Mount{{HostPath: "/tmp", ContainerPath: "/mnt", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
			return c
		}(), "mount /tmp → /mnt"},
		{"escaping mount path", func() *runtimeapi.ContainerConfig {
			c := ctrConfig("x", "true")
			c.Mounts = []*runtimeapi.Mount{{HostPath: "/var/lib/../../etc", ContainerPath: "/mnt"}}
			return c
		}(), "clean"},
		{"unknown capability", func() *runtimeapi.ContainerConfig {
			c := ctrConfig("x", "true")
			c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"FLY"}}}}
			return c
		}(), "FLY"},
	}
	for _, tc := range bad {
		if _, err := b.CreateContainer(ctx, "bad", "pod1", tc.cfg, pcfg); !errors.Is(err, runtimes.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CreateContainer = %v, want ErrInvalid containing %q", tc.name, err, tc.want)
		}
	}

	cfg := ctrConfig("web", "/bin/sh", "-c", "echo hello $FOO; echo oops >&2; exec sleep 300")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 256 << 20, OomScoreAdj: -999}}
	if _, err := b.CreateContainer(ctx, "ctr1", "pod1", cfg, pcfg); err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if st := e.status(t, "ctr1"); st.State != runtimeapi.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.ImageRef != HostImageID || st.Metadata.GetName() != "web" {
		t.Errorf("status after create = %v", st)
	}
	unitName := b.containers["ctr1"].rec.Unit
	units, _ := e.m.ListUnits(ctx)
	found := false
	for _, u := range units {
		found = found || u.Name == unitName
	}
	if !found {
		t.Errorf("unit %s not in list-units", unitName)
	}

	if err := b.StartContainer(ctx, "ctr1"); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	st := e.status(t, "ctr1")
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
		t.Fatalf("status after start = %v", st)
	}
	us, _ := e.m.UnitState(unitName)
	pid := us.MainPID
	vs, err := b.ContainerStatus(ctx, "ctr1", true)
	var info struct {
		Unit string
		Pid  int
	}
	if err != nil || json.Unmarshal([]byte(vs.Info["info"]), &info) != nil || info.Unit != unitName || info.Pid != pid {
		t.Errorf("verbose ContainerStatus info = %v, %v", vs.GetInfo(), err)
	}
	procs, _ := os.ReadFile(filepath.Join(b.cg.Path("pids", podCg+"/ctr1"), "cgroup.procs"))
	if !strings.Contains(string(procs), strconv.Itoa(pid)) {
		t.Errorf("main pid %d not in the container cgroup: %q", pid, procs)
	}
	quota, _ := os.ReadFile(filepath.Join(b.cg.Path("cpu", podCg+"/ctr1"), "cpu.cfs_quota_us"))
	if strings.TrimSpace(string(quota)) != "50000" {
		t.Errorf("cpu.cfs_quota_us = %q, want 50000", quota)
	}
	mem, _ := os.ReadFile(filepath.Join(b.cg.Path("memory", podCg+"/ctr1"), "memory.limit_in_bytes"))
	if strings.TrimSpace(string(mem)) != strconv.Itoa(256<<20) {
		t.Errorf("memory.limit_in_bytes = %q", mem)
	}

	// Logs in kubelet's format.
	logFile := filepath.Join(e.logDir, "hostpod", "web", "0.log")
	waitFor(t, "both log lines", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), " stdout F hello bar\n") && strings.Contains(string(b), " stderr F oops\n")
	})
	if st.LogPath != logFile {
		t.Errorf("LogPath = %q, want %q", st.LogPath, logFile)
	}

	// ExecSync: output, exit code, environment, cgroup, timeout.
	out, _, code, err := b.ExecSync(ctx, "ctr1", []string{"sh", "-c", "echo $FOO; cat /proc/self/cgroup | grep pids; exit 7"}, 10*time.Second)
	if err != nil || code != 7 || !strings.HasPrefix(string(out), "bar\n") || !strings.Contains(string(out), "/kubepods/pod1/ctr1") {
		t.Errorf("ExecSync = %q, %d, %v", out, code, err)
	}
	begin := time.Now()
	if _, _, _, err := b.ExecSync(ctx, "ctr1", []string{"sleep", "30"}, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ExecSync past its timeout = %v, want DeadlineExceeded", err)
	}
	if time.Since(begin) > 20*time.Second {
		t.Errorf("ExecSync timeout did not kill the command")
	}
	if _, _, code, _ := b.ExecSync(ctx, "ctr1", []string{"/nonexistent"}, 0); code != 203 {
		t.Errorf("ExecSync of a missing command: exit %d, want 203", code)
	}

	// Streaming exec, no tty.
	var sout, serr bytes.Buffer
	err = b.StreamingRuntime().Exec(ctx, "ctr1", []string{"sh", "-c", "cat; echo err >&2; exit 3"}, strings.NewReader("from stdin\n"), nopCloser{&sout}, nopCloser{&serr}, false, nil)
	var ce interface{ ExitStatus() int }
	if !errors.As(err, &ce) || ce.ExitStatus() != 3 || sout.String() != "from stdin\n" || serr.String() != "err\n" {
		t.Errorf("streaming Exec = %v, stdout %q, stderr %q", err, sout.String(), serr.String())
	}
	// With a tty.
	var tout bytes.Buffer
	if err := b.StreamingRuntime().Exec(ctx, "ctr1", []string{"sh", "-c", "test -t 1 && echo tty"}, nil, nopCloser{&tout}, nil, true, nil); err != nil || !strings.Contains(tout.String(), "tty") {
		t.Errorf("streaming Exec with tty = %v, output %q", err, tout.String())
	}

	// Stats from the cgroups.
	b.ExecSync(ctx, "ctr1", []string{"sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done"}, 30*time.Second)
	cs, err := b.ContainerStats(ctx, "ctr1")
	if err != nil || cs.Cpu.UsageCoreNanoSeconds.GetValue() == 0 || cs.Memory.WorkingSetBytes == nil || cs.Attributes.Id != "ctr1" {
		t.Errorf("ContainerStats = %v, %v", cs, err)
	}
	ps, err := b.PodSandboxStats(ctx, "pod1")
	if err != nil || ps.Linux.Cpu.UsageCoreNanoSeconds.GetValue() == 0 || ps.Linux.Process.ProcessCount.GetValue() == 0 || len(ps.Linux.Containers) != 1 {
		t.Errorf("PodSandboxStats = %v, %v", ps, err)
	}
	if l, err := b.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: "pod1"}); err != nil || len(l) != 1 {
		t.Errorf("ListContainerStats = %v, %v", l, err)
	}

	// Resources update reaches the cgroup.
	if err := b.UpdateContainerResources(ctx, "ctr1", &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000, MemoryLimitInBytes: 128 << 20}); err != nil {
		t.Errorf("UpdateContainerResources: %v", err)
	}
	quota, _ = os.ReadFile(filepath.Join(b.cg.Path("cpu", podCg+"/ctr1"), "cpu.cfs_quota_us"))
	if strings.TrimSpace(string(quota)) != "20000" {
		t.Errorf("after update, cpu.cfs_quota_us = %q, want 20000", quota)
	}

	// ReopenContainerLog after a rotation by rename.
	os.Rename(logFile, logFile+".1")
	if err := b.ReopenContainerLog(ctx, "ctr1"); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	if _, err := os.Stat(logFile); err != nil {
		t.Errorf("log file not recreated: %v", err)
	}

	// Events.
	evCtx, evCancel := context.WithCancel(ctx)
	events := make(chan *runtimeapi.ContainerEventResponse, 16)
	go b.ContainerEvents(evCtx, events)
	defer evCancel()
	time.Sleep(50 * time.Millisecond) // let the subscription register

	// Stop: SIGTERM kills sleep; nothing is left running, the cgroup is gone.
	if err := b.StopContainer(ctx, "ctr1", 5*time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st = e.status(t, "ctr1")
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 143 || st.Reason != "Error" || st.FinishedAt == 0 {
		t.Errorf("status after stop = %v", st)
	}
	if alive(pid) {
		t.Errorf("main pid %d still alive after stop", pid)
	}
	if _, err := os.Stat(b.cg.Path("pids", podCg+"/ctr1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container cgroup still there: %v", err)
	}
	select {
	case ev := <-events:
		if ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT || ev.ContainerId != "ctr1" {
			t.Errorf("event = %v, want STOPPED of ctr1", ev)
		}
	case <-time.After(10 * time.Second):
		t.Error("no STOPPED event")
	}
	if err := b.StopContainer(ctx, "ctr1", 0); err != nil {
		t.Errorf("second StopContainer: %v", err)
	}

	// A container that completes.
	if _, err := b.CreateContainer(ctx, "ctr2", "pod1", ctrConfig("job", "true"), pcfg); err != nil {
		t.Fatal(err)
	}
	if err := b.StartContainer(ctx, "ctr2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ctr2 to exit", func() bool { return e.status(t, "ctr2").State == runtimeapi.ContainerState_CONTAINER_EXITED })
	if st := e.status(t, "ctr2"); st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("completed container: %v", st)
	}
	// And one whose command does not exist: the start fails.
	if _, err := b.CreateContainer(ctx, "ctr3", "pod1", ctrConfig("bad", "/nonexistent/cmd"), pcfg); err != nil {
		t.Fatal(err)
	}
	if err := b.StartContainer(ctx, "ctr3"); err == nil {
		t.Error("StartContainer of a missing command succeeded")
	}
	if st := e.status(t, "ctr3"); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode == 0 {
		t.Errorf("failed start: %v", st)
	}

	// User, group and supplementary groups apply to the container and to
	// exec in it; the working directory too.
	ucfg := ctrConfig("user", "sleep", "300")
	ucfg.WorkingDir = "/tmp"
	ucfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		RunAsUser: &runtimeapi.Int64Value{Value: 65534}, RunAsGroup: &runtimeapi.Int64Value{Value: 65534}, SupplementalGroups: []int64{4242},
	}}
	if _, err := b.CreateContainer(ctx, "ctr6", "pod1", ucfg, pcfg); err != nil {
		t.Fatal(err)
	}
	if err := b.StartContainer(ctx, "ctr6"); err != nil {
		t.Fatal(err)
	}
	if out, _, code, err := b.ExecSync(ctx, "ctr6", []string{"sh", "-c", "id -u; id -g; id -G; pwd"}, 10*time.Second); err != nil || code != 0 || !strings.HasPrefix(string(out), "65534\n65534\n") || !strings.Contains(string(out), "4242") || !strings.HasSuffix(string(out), "/tmp\n") {
		t.Errorf("exec as the container's user = %q, %d, %v", out, code, err)
	}
	us6, _ := e.m.UnitState(b.containers["ctr6"].rec.Unit)
	if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", us6.MainPID)); !strings.Contains(string(st), "Uid:\t65534") {
		t.Errorf("container process does not run as uid 65534")
	}
	if err := b.RemoveContainer(ctx, "ctr6"); err != nil {
		t.Fatal(err)
	}

	// Attach to a container's stdin and output (stdin once: EOF ends it).
	acfg := ctrConfig("cat", "cat")
	acfg.Stdin, acfg.StdinOnce = true, true
	if _, err := b.CreateContainer(ctx, "ctr5", "pod1", acfg, pcfg); err != nil {
		t.Fatal(err)
	}
	if err := b.StartContainer(ctx, "ctr5"); err != nil {
		t.Fatal(err)
	}
	var aout bytes.Buffer
	actx, acancel := context.WithTimeout(ctx, 20*time.Second)
	pr, pw := io.Pipe()
	attached := make(chan error, 1)
	go func() { attached <- b.StreamingRuntime().Attach(actx, "ctr5", pr, nopCloser{&aout}, nil, false, nil) }()
	time.Sleep(100 * time.Millisecond) // the follower starts from now
	fmt.Fprintln(pw, "typed in")
	pw.Close()
	if err := <-attached; err != nil {
		t.Errorf("Attach: %v", err)
	}
	if actx.Err() != nil {
		t.Error("Attach did not end when the container exited")
	}
	acancel()
	if aout.String() != "typed in\n" {
		t.Errorf("attached output = %q", aout.String())
	}
	if st := e.status(t, "ctr5"); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 {
		t.Errorf("cat after stdin EOF: %v", st)
	}

	list, _ := b.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: "pod1"})
	if len(list) != 4 {
		t.Errorf("ListContainers = %d containers, want 4", len(list))
	}
	if err := b.RemoveContainer(ctx, "ctr1"); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := b.ContainerStatus(ctx, "ctr1", false); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("status of a removed container = %v, want ErrNotFound", err)
	}
	if _, ok := e.m.UnitState(unitName); ok {
		t.Errorf("unit %s still loaded after RemoveContainer", unitName)
	}
	if err := b.RemoveContainer(ctx, "ctr1"); err != nil {
		t.Errorf("second RemoveContainer: %v", err)
	}
	if err := b.StopPodSandbox(ctx, "pod1"); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if err := b.RemovePodSandbox(ctx, "pod1"); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if _, err := os.Stat(b.cg.Path("pids", podCg)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod cgroup still there: %v", err)
	}
	if err := b.RemovePodSandbox(ctx, "pod1"); err != nil {
		t.Errorf("second RemovePodSandbox: %v", err)
	}
	if _, err := b.PodSandboxStatus(ctx, "pod1", false); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("status of a removed pod = %v, want ErrNotFound", err)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// cniConf is a bridge network of its own for the test (unique bridge name
// and subnet), with host-local IPAM.
func cniConf(bridge, subnet string) string {
	return `{"cniVersion":"1.0.0","name":"` + bridge + `","plugins":[{"type":"bridge","bridge":"` + bridge +
		`","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"` + subnet + `"}]],"dataDir":"` +
		filepath.Join(os.TempDir(), bridge+"-ipam") + `"}}]}`
}

func TestPodNetworkCNI(t *testing.T) {
	n := os.Getpid() % 200
	bridge := fmt.Sprintf("cnt%d", os.Getpid()%100000)
	subnet := fmt.Sprintf("10.%d.%d.0/24", 200+n%50, n)
	e := newEnv(t, cniConf(bridge, subnet))
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", bridge).Run()
		os.RemoveAll(filepath.Join(os.TempDir(), bridge+"-ipam"))
	})
	ctx := context.Background()
	b := e.b
	if ok, reason, msg := b.NetworkReady(ctx); !ok {
		t.Fatalf("NetworkReady = false: %s %s", reason, msg)
	}
	pcfg := podConfig("netpod", e.logDir, runtimeapi.NamespaceMode_POD)
	if _, err := b.RunPodSandbox(ctx, "pod2", pcfg, "native"); err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	ps, err := b.PodSandboxStatus(ctx, "pod2", false)
	if err != nil {
		t.Fatal(err)
	}
	ip := ps.Status.Network.GetIp()
	_, ipnet, _ := net.ParseCIDR(subnet)
	if ip == "" || !ipnet.Contains(net.ParseIP(ip)) || ps.Status.Linux.Namespaces.Options.Network != runtimeapi.NamespaceMode_POD {
		t.Fatalf("pod status = %v, want an IP in %s", ps.Status, subnet)
	}
	holder := b.pods["pod2"].rec.HolderPID

	// A bind mount, visible to the pod only.
	src, dst := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("mounted\n"), 0o644)
	self, _ := os.Executable()
	cfg := ctrConfig("srv", self)
	cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: "NATIVE_TEST_HTTP", Value: []byte(":8080")})
	cfg.Mounts = []*runtimeapi.Mount{{HostPath: src, ContainerPath: dst, Readonly: true}}
	if _, err := b.CreateContainer(ctx, "ctr4", "pod2", cfg, pcfg); err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := b.StartContainer(ctx, "ctr4"); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "f")); err == nil {
		t.Error("the pod's bind mount is visible on the host")
	}
	out, _, code, err := b.ExecSync(ctx, "ctr4", []string{"sh", "-c", "cat " + dst + "/f; hostname; touch " + dst + "/g"}, 10*time.Second)
	if err != nil || !strings.HasPrefix(string(out), "mounted\nnetpod-host\n") || code == 0 {
		t.Errorf("ExecSync in the pod = %q, exit %d, %v; want the mounted file, the pod's hostname and a read-only mount", out, code, err)
	}

	// The host reaches the pod's IP.
	var body string
	waitFor(t, "the pod's HTTP server on "+ip, func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + net.JoinHostPort(ip, "8080") + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		bb, _ := io.ReadAll(resp.Body)
		body = string(bb)
		return true
	})
	if body != "hello from netpod-host\n" {
		t.Errorf("GET pod IP = %q", body)
	}

	// Port-forward dials 127.0.0.1 inside the pod.
	c1, c2 := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- b.StreamingRuntime().PortForward(ctx, "pod2", 8080, c2) }()
	fmt.Fprintf(c1, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	c1.SetReadDeadline(time.Now().Add(20 * time.Second))
	read := make(chan []byte)
	go func() { b, _ := io.ReadAll(c1); read <- b }()
	if err := <-done; err != nil {
		t.Errorf("PortForward: %v", err)
	}
	c2.Close() // the streaming server closes the stream after PortForward
	resp := <-read
	if !strings.Contains(string(resp), "hello from netpod-host") {
		t.Errorf("port-forward response = %q", resp)
	}

	if err := b.StopPodSandbox(ctx, "pod2"); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if alive(holder) {
		t.Errorf("namespace holder %d still alive", holder)
	}
	if st := e.status(t, "ctr4"); st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Errorf("container after pod stop: %v", st.State)
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get("http://" + net.JoinHostPort(ip, "8080") + "/"); err == nil {
		t.Error("the pod still answers after StopPodSandbox")
	}
	if err := b.RemovePodSandbox(ctx, "pod2"); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}
