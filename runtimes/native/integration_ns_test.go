//go:build integration

package native

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// startCtr creates and starts a container and returns its main PID.
func (e *env) startCtr(t *testing.T, id, podID string, cfg *runtimeapi.ContainerConfig, pcfg *runtimeapi.PodSandboxConfig) int {
	t.Helper()
	ctx := context.Background()
	if _, err := e.b.CreateContainer(ctx, id, podID, cfg, pcfg); err != nil {
		t.Fatalf("CreateContainer %s: %v", id, err)
	}
	if err := e.b.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer %s: %v", id, err)
	}
	st, _ := e.m.UnitState(e.b.containers[id].rec.Unit)
	return st.MainPID
}

func (e *env) exec(t *testing.T, id, script string) string {
	t.Helper()
	out, serr, code, err := e.b.ExecSync(context.Background(), id, []string{"sh", "-c", script}, 20*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exec %q in %s: exit %d, %v, stderr %q, stdout %q", script, id, code, err, serr, out)
	}
	return string(out)
}

func readlink(t *testing.T, p string) string {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// kubelet's mounts on a pod that shares every host namespace: each
// container gets a mount namespace of its own, mounts are visible only
// there, and a container path missing on the host is skipped, not created.
func TestHostPodMounts(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("mounts", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := e.b.RunPodSandbox(ctx, "podm", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	if e.b.pods["podm"].rec.HolderPID != 0 {
		t.Error("a pod sharing every host namespace got a holder")
	}
	vol, dst := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(vol, "f"), []byte("volume\n"), 0o644)
	hosts := filepath.Join(t.TempDir(), "etc-hosts")
	os.WriteFile(hosts, []byte("10.9.8.7 native-test\n"), 0o644)
	term := filepath.Join(t.TempDir(), "termination-log")
	os.WriteFile(term, nil, 0o644)
	hostHosts, _ := os.ReadFile("/etc/hosts")
	const missing = "/dev/corral-native-test-termination-log"

	mounts := []*runtimeapi.Mount{
		{HostPath: vol, ContainerPath: dst, Readonly: true},
		{HostPath: hosts, ContainerPath: "/etc/hosts"},
		{HostPath: term, ContainerPath: missing},
		// Inside the container's own volume: the mount point is created there.
		{HostPath: vol, ContainerPath: dst + "/nested", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
	}
	// dst + "/nested" lies under the read-only dst: skipped as well.
	cfg := ctrConfig("app", "sleep", "300")
	cfg.Mounts = mounts
	e.startCtr(t, "cm1", "podm", cfg, pcfg)
	out := e.exec(t, "cm1", "cat "+dst+"/f /etc/hosts; test -e "+missing+" || echo no-termination-log; touch "+dst+"/x 2>/dev/null || echo read-only; hostname")
	host, _ := os.Hostname()
	if want := "volume\n10.9.8.7 native-test\nno-termination-log\nread-only\n" + host + "\n"; out != want {
		t.Errorf("inside the container: %q, want %q", out, want)
	}
	if got, _ := os.ReadFile("/etc/hosts"); string(got) != string(hostHosts) {
		t.Errorf("the host's /etc/hosts changed to %q", got)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("%s was created on the host", missing)
	}
	if _, err := os.Stat(filepath.Join(dst, "f")); err == nil {
		t.Error("the container's bind mount is visible on the host")
	}
	st := e.status(t, "cm1")
	if !strings.Contains(st.Message, missing) || !strings.Contains(st.Message, "skipped") {
		t.Errorf("status message %q does not report the skipped mount", st.Message)
	}
	// Host network: same net namespace and hostname, own mount namespace.
	ns := e.exec(t, "cm1", "readlink /proc/self/ns/net /proc/self/ns/mnt")
	if f := strings.Fields(ns); len(f) != 2 || f[0] != readlink(t, "/proc/self/ns/net") || f[1] == readlink(t, "/proc/self/ns/mnt") {
		t.Errorf("namespaces in the container: %q", ns)
	}

	// readonly_rootfs, masked and read-only paths, in the container's view only.
	cfg3 := ctrConfig("ro", "sleep", "300")
	cfg3.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		ReadonlyRootfs: true, MaskedPaths: []string{"/proc/keys", "/sys/firmware", "/proc/no-such-thing"}, ReadonlyPaths: []string{"/proc/sys"},
	}}
	e.startCtr(t, "cm3", "podm", cfg3, pcfg)
	probe := filepath.Join("/var/tmp", fmt.Sprintf("corral-native-ro-%d", os.Getpid()))
	out = e.exec(t, "cm3", "touch "+probe+" 2>/dev/null && echo writable; wc -c < /proc/keys; ls /sys/firmware | wc -l; grep -c ' /proc/sys ro,' /proc/self/mountinfo")
	if out != "0\n0\n1\n" {
		os.Remove(probe)
		t.Errorf("read-only root and masks: %q, want no write, empty /proc/keys and /sys/firmware, read-only /proc/sys", out)
	}
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Errorf("the host's root became read-only: %v", err)
	}
	os.Remove(probe)

	// A writable volume: a missing mount point inside it is created there.
	cfg2 := ctrConfig("app2", "sleep", "300")
	sub := t.TempDir()
	os.WriteFile(filepath.Join(sub, "g"), []byte("nested\n"), 0o644)
	cfg2.Mounts = []*runtimeapi.Mount{
		{HostPath: vol, ContainerPath: dst},
		{HostPath: sub, ContainerPath: dst + "/nested"},
	}
	e.startCtr(t, "cm2", "podm", cfg2, pcfg)
	if out := e.exec(t, "cm2", "cat "+dst+"/nested/g"); out != "nested\n" {
		t.Errorf("nested mount: %q", out)
	}
	if fi, err := os.Stat(filepath.Join(vol, "nested")); err != nil || !fi.IsDir() {
		t.Errorf("mount point in the volume: %v", err)
	}
	// Two containers of one pod, each its own /etc/hosts view: cm1's
	// mounts are not cm2's.
	if out := e.exec(t, "cm2", "cat /etc/hosts"); out != string(hostHosts) {
		t.Errorf("cm2 sees cm1's /etc/hosts: %q", out)
	}
}

// A pod with its own network keeps the pod's hostname; one with the host's
// network and its own IPC keeps the host's network and name.
func TestHostNetworkPrivateIPC(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("ipcpod", e.logDir, runtimeapi.NamespaceMode_NODE)
	pcfg.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_POD
	host, _ := os.Hostname()
	if _, err := e.b.RunPodSandbox(ctx, "podi", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	if h, _ := os.Hostname(); h != host {
		os.WriteFile("/proc/sys/kernel/hostname", []byte(host), 0)
		t.Fatalf("RunPodSandbox renamed the host to %q", h)
	}
	e.startCtr(t, "ci1", "podi", ctrConfig("app", "sleep", "300"), pcfg)
	e.startCtr(t, "ci2", "podi", ctrConfig("app2", "sleep", "300"), pcfg)
	shm := fmt.Sprintf("/dev/shm/corral-native-test-%d", os.Getpid())
	out := e.exec(t, "ci1", "hostname; readlink /proc/self/ns/net /proc/self/ns/ipc; touch "+shm)
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != host || f[1] != readlink(t, "/proc/self/ns/net") || f[2] == readlink(t, "/proc/self/ns/ipc") {
		t.Errorf("in a host-network pod with its own IPC: %q", out)
	}
	// POSIX shared memory: the pod's own /dev/shm, shared by its containers.
	if _, err := os.Stat(shm); err == nil {
		os.Remove(shm)
		t.Error("the pod's /dev/shm is the host's")
	}
	if out := e.exec(t, "ci2", "ls "+shm); out != shm+"\n" {
		t.Errorf("the other container of the pod does not see %s: %q", shm, out)
	}
}

// PID namespaces: the pod's (holder = PID 1, containers see each other)
// and a container's own (its command is PID 1).
func TestPIDNamespaces(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("pidpod", e.logDir, runtimeapi.NamespaceMode_NODE)
	pcfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	if _, err := e.b.RunPodSandbox(ctx, "podp", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	ps, _ := e.b.PodSandboxStatus(ctx, "podp", false)
	if ps.Status.Linux.Namespaces.Options.Pid != runtimeapi.NamespaceMode_POD {
		t.Errorf("pod status PID mode = %v", ps.Status.Linux.Namespaces.Options.Pid)
	}
	holder := e.b.pods["podp"].rec.HolderPID
	withPID := func(name string, mode runtimeapi.NamespaceMode) *runtimeapi.ContainerConfig {
		c := ctrConfig(name, "sleep", "300")
		c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: mode}}}
		return c
	}
	pa := e.startCtr(t, "cp1", "podp", withPID("a", runtimeapi.NamespaceMode_POD), pcfg)
	pb := e.startCtr(t, "cp2", "podp", withPID("b", runtimeapi.NamespaceMode_POD), pcfg)
	podNS := readlink(t, fmt.Sprintf("/proc/%d/ns/pid", holder))
	for _, pid := range []int{pa, pb} {
		// The unit's main PID is the program itself, inside the pod.
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "sleep" {
			t.Errorf("main pid %d is %q, not the container's command", pid, comm)
		}
		if got := readlink(t, fmt.Sprintf("/proc/%d/ns/pid", pid)); got != podNS {
			t.Errorf("main pid %d in PID namespace %s, want the pod's %s", pid, got, podNS)
		}
	}
	// The holder, both sleeps, and the exec's shell, ls and grep.
	if out := e.exec(t, "cp1", "ls /proc | grep -c '^[0-9]'"); out < "4\n" || out > "8\n" || len(out) != 2 {
		t.Errorf("in the pod's PID namespace %q processes, want 4 to 8", out)
	}

	// A container with a PID namespace of its own: its command is PID 1.
	cfg := ctrConfig("own", "sh", "-c", "echo pid=$$; exec sleep 300")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}}
	pc := e.startCtr(t, "cp3", "podp", cfg, pcfg)
	waitFor(t, "the container's log", func() bool {
		b, _ := os.ReadFile(filepath.Join(e.logDir, "pidpod", "own", "0.log"))
		return strings.Contains(string(b), "pid=")
	})
	b, _ := os.ReadFile(filepath.Join(e.logDir, "pidpod", "own", "0.log"))
	if !strings.Contains(string(b), " stdout F pid=1\n") {
		t.Errorf("own PID namespace: log %q, want pid=1", b)
	}
	if readlink(t, fmt.Sprintf("/proc/%d/ns/pid", pc)) == podNS {
		t.Error("CONTAINER mode joined the pod's PID namespace")
	}
	// sleep, and the exec's shell, ls and grep.
	if out := e.exec(t, "cp3", "ls /proc | grep -c '^[0-9]'"); out < "2\n" || out > "5\n" || len(out) != 2 {
		t.Errorf("exec in a container's own PID namespace sees %q processes, want 2 to 5", out)
	}
	// TARGET is refused clearly.
	if _, err := e.b.CreateContainer(ctx, "cp4", "podp", withPID("t", runtimeapi.NamespaceMode_TARGET), pcfg); err == nil || !strings.Contains(err.Error(), "TARGET") {
		t.Errorf("TARGET PID mode: %v", err)
	}
	// Stopping the pod ends everything in its PID namespace.
	if err := e.b.StopPodSandbox(ctx, "podp"); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{holder, pa, pb, pc} {
		if alive(pid) {
			t.Errorf("pid %d alive after StopPodSandbox", pid)
		}
	}
}

func capLine(t *testing.T, status, key string) uint64 {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", key, status)
	return 0
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("cappod", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := e.b.RunPodSandbox(ctx, "podc", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	self, _ := os.ReadFile("/proc/self/status")
	mine := capLine(t, string(self), "CapBnd")
	withCaps := func(name string, sc *runtimeapi.LinuxContainerSecurityContext) *runtimeapi.ContainerConfig {
		c := ctrConfig(name, "sleep", "300")
		c.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: sc}
		return c
	}
	tests := []struct {
		name string
		sc   *runtimeapi.LinuxContainerSecurityContext
		want uint64 // CapBnd and CapEff of a root container
	}{
		{"default", nil, defaultCaps},
		{"privileged", &runtimeapi.LinuxContainerSecurityContext{Privileged: true}, mine},
		{"add and drop", &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{
			AddCapabilities: []string{"NET_ADMIN", "CAP_SYS_PTRACE"}, DropCapabilities: []string{"CHOWN"}}},
			(defaultCaps | capMask("NET_ADMIN", "SYS_PTRACE")) &^ capMask("CHOWN")},
		{"drop all, add one", &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{
			AddCapabilities: []string{"KILL"}, DropCapabilities: []string{"ALL"}}}, capMask("KILL")},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("cc%d", i)
			pid := e.startCtr(t, id, "podc", withCaps(strings.ReplaceAll(tc.name, " ", "-"), tc.sc), pcfg)
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"CapBnd", "CapEff", "CapPrm"} {
				if got := capLine(t, string(st), k); got != tc.want&mine {
					t.Errorf("main process %s = %x, want %x", k, got, tc.want&mine)
				}
			}
			// exec gets the container's capabilities too.
			if got := capLine(t, e.exec(t, id, "cat /proc/self/status"), "CapEff"); got != tc.want&mine {
				t.Errorf("exec CapEff = %x, want %x", got, tc.want&mine)
			}
		})
	}
}
