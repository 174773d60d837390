//go:build integration

package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"corral.io/corral/runtimes"
)

// run_as_group needs a user to go with it, as in containerd.
func TestRunAsGroupWithoutUser(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("rag", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := e.b.RunPodSandbox(ctx, "podg", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	cfg := ctrConfig("g", "id")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		RunAsGroup: &runtimeapi.Int64Value{Value: 1002},
	}}
	if _, err := e.b.CreateContainer(ctx, "g1", "podg", cfg, pcfg); !errors.Is(err, runtimes.ErrInvalid) {
		t.Errorf("run_as_group without a user: %v, want ErrInvalid", err)
	}
	cfg.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 65534}
	if _, err := e.b.CreateContainer(ctx, "g2", "podg", cfg, pcfg); err != nil {
		t.Errorf("run_as_group with run_as_user: %v", err)
	}
}

// The pod's DNS config is the container's /etc/resolv.conf, in its own
// mount namespace only.
func TestPodDNSConfig(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	hostConf, _ := os.ReadFile("/etc/resolv.conf")
	pcfg := podConfig("dns", e.logDir, runtimeapi.NamespaceMode_NODE)
	pcfg.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.10.10.10", "10.10.10.11"}, Searches: []string{"a.example", "b.example"}, Options: []string{"ndots:5", "timeout:1"}}
	if _, err := e.b.RunPodSandbox(ctx, "podd", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	e.startCtr(t, "d1", "podd", ctrConfig("d", "sleep", "300"), pcfg)
	want := "search a.example b.example\nnameserver 10.10.10.10\nnameserver 10.10.10.11\noptions ndots:5 timeout:1\n"
	if got := e.exec(t, "d1", "cat /etc/resolv.conf"); got != want {
		t.Errorf("resolv.conf in the container = %q, want %q", got, want)
	}
	if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(hostConf) {
		t.Errorf("the host's /etc/resolv.conf changed to %q", now)
	}
	// Without a DNS config the host's file shows through.
	pcfg2 := podConfig("nodns", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := e.b.RunPodSandbox(ctx, "podn", pcfg2, "native"); err != nil {
		t.Fatal(err)
	}
	e.startCtr(t, "n1", "podn", ctrConfig("n", "sleep", "300"), pcfg2)
	if got := e.exec(t, "n1", "cat /etc/resolv.conf"); got != string(hostConf) {
		t.Errorf("resolv.conf without a DNS config = %q, want the host's", got)
	}
	if err := e.b.RemovePodSandbox(ctx, "podd"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.b.resolvConf("podd")); !os.IsNotExist(err) {
		t.Errorf("the pod's resolv.conf outlived it: %v", err)
	}
}

// Pod sysctls are set in the pod's own namespaces; those that would reach
// the host are refused.
func TestPodSysctls(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	hostShm, _ := os.ReadFile("/proc/sys/kernel/shm_rmid_forced")
	hostMsg, _ := os.ReadFile("/proc/sys/fs/mqueue/msg_max")
	pcfg := podConfig("sysctl", e.logDir, runtimeapi.NamespaceMode_NODE)
	pcfg.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_POD
	pcfg.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100"}
	if _, err := e.b.RunPodSandbox(ctx, "pods", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	e.startCtr(t, "s1", "pods", ctrConfig("s", "sleep", "300"), pcfg)
	if got := e.exec(t, "s1", "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/fs/mqueue/msg_max"); got != "1\n100\n" {
		t.Errorf("sysctls in the container = %q, want 1 and 100", got)
	}
	if now, _ := os.ReadFile("/proc/sys/kernel/shm_rmid_forced"); string(now) != string(hostShm) {
		t.Errorf("the host's kernel.shm_rmid_forced changed to %q", now)
	}
	if now, _ := os.ReadFile("/proc/sys/fs/mqueue/msg_max"); string(now) != string(hostMsg) {
		t.Errorf("the host's fs.mqueue.msg_max changed to %q", now)
	}
	for _, tc := range []struct {
		name    string
		ipc     runtimeapi.NamespaceMode
		sysctls map[string]string
	}{
		{"IPC sysctl in the host's IPC namespace", runtimeapi.NamespaceMode_NODE, map[string]string{"kernel.shm_rmid_forced": "1"}},
		{"net sysctl on the host network", runtimeapi.NamespaceMode_POD, map[string]string{"net.ipv4.ip_forward": "1"}},
		{"not namespaced", runtimeapi.NamespaceMode_POD, map[string]string{"kernel.pid_max": "4194304"}},
	} {
		bad := podConfig("bad", e.logDir, runtimeapi.NamespaceMode_NODE)
		bad.Linux.SecurityContext.NamespaceOptions.Ipc = tc.ipc
		bad.Linux.Sysctls = tc.sysctls
		if _, err := e.b.RunPodSandbox(ctx, "bad", bad, "native"); !errors.Is(err, runtimes.ErrInvalid) {
			t.Errorf("%s: RunPodSandbox = %v, want ErrInvalid", tc.name, err)
		}
	}
}

// A container killed by the OOM killer of its own memory cgroup exits 137
// with reason OOMKilled; another SIGKILL is an Error.
func TestOOMKilled(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("oom", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := e.b.RunPodSandbox(ctx, "podo", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	cfg := ctrConfig("o", "sh", "-c", "dd if=/dev/zero of=/dev/null bs=40M")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 15 << 20}}
	e.startCtr(t, "o1", "podo", cfg, pcfg)
	e.startCtr(t, "k1", "podo", ctrConfig("k", "sh", "-c", "kill -9 $$"), pcfg)
	for id, want := range map[string]string{"o1": "OOMKilled", "k1": "Error"} {
		waitFor(t, id+" to exit", func() bool { return e.status(t, id).State == runtimeapi.ContainerState_CONTAINER_EXITED })
		if st := e.status(t, id); st.ExitCode != 137 || st.Reason != want {
			t.Errorf("%s: exit %d reason %q, want 137 %q", id, st.ExitCode, st.Reason, want)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuf) Close() error   { return nil }

// Attach gets the main process's output as written (no newline needed)
// from the moment it attaches, and feeds its stdin; the log still gets
// every line.
func TestAttachShell(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("attach", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := e.b.RunPodSandbox(ctx, "poda", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	cfg := ctrConfig("sh", "/bin/sh")
	cfg.Stdin, cfg.StdinOnce = true, true
	e.startCtr(t, "a1", "poda", cfg, pcfg)
	out := &syncBuf{}
	pr, pw := io.Pipe()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	attached := make(chan error, 1)
	go func() { attached <- e.b.StreamingRuntime().Attach(actx, "a1", pr, out, out, false, nil) }()
	time.Sleep(200 * time.Millisecond)
	io.WriteString(pw, "echo -n hello\n")
	waitFor(t, "hello from the attached shell", func() bool { return out.String() == "hello" })
	io.WriteString(pw, "echo -n ' world' >&2\n")
	waitFor(t, "stderr from the attached shell", func() bool { return out.String() == "hello world" })
	pw.Close() // stdin once: the shell reads EOF and exits
	if err := <-attached; err != nil {
		t.Errorf("Attach: %v", err)
	}
	if actx.Err() != nil {
		t.Error("Attach did not end when the container exited")
	}
	waitFor(t, "the shell to exit", func() bool { return e.status(t, "a1").State == runtimeapi.ContainerState_CONTAINER_EXITED })
	waitFor(t, "the shell's output in the container log", func() bool {
		log, _ := os.ReadFile(e.b.containers["a1"].rec.LogPath)
		return strings.Contains(string(log), " stdout F hello\n") && strings.Contains(string(log), " stderr F  world\n")
	})
}

// Seccomp profiles apply to the container's process and its execs:
// RuntimeDefault, a Localhost file (here one refusing chmod, tried on a
// scratch file), none for unconfined or privileged containers.
func TestSeccompProfiles(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	pcfg := podConfig("seccomp", e.logDir, runtimeapi.NamespaceMode_NODE)
	if _, err := e.b.RunPodSandbox(ctx, "podc", pcfg, "native"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	scratch := filepath.Join(dir, "f")
	os.WriteFile(scratch, nil, 0o644)
	profile := filepath.Join(dir, "block-chmod.json")
	os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat","fchmodat2"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	withProfile := func(name string, sp *runtimeapi.SecurityProfile, privileged bool) *runtimeapi.ContainerConfig {
		cfg := ctrConfig(name, "sleep", "300")
		cfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Seccomp: sp, Privileged: privileged}}
		return cfg
	}
	localhost := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}
	for _, tc := range []struct {
		id, mode, chmod string
		cfg             *runtimeapi.ContainerConfig
	}{
		{"sc1", "2", "chmod done", withProfile("default", &runtimeapi.SecurityProfile{}, false)},
		{"sc2", "2", "Operation not permitted", withProfile("local", localhost, false)},
		{"sc3", "0", "chmod done", withProfile("unconfined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, false)},
		{"sc4", "0", "chmod done", withProfile("nil", nil, false)},
		{"sc5", "0", "chmod done", withProfile("privileged", localhost, true)},
	} {
		pid := e.startCtr(t, tc.id, "podc", tc.cfg, pcfg)
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); !strings.Contains(string(st), "Seccomp:\t"+tc.mode+"\n") {
			t.Errorf("%s: main process is not in seccomp mode %s", tc.id, tc.mode)
		}
		out := e.exec(t, tc.id, "grep Seccomp: /proc/self/status; chmod 600 "+scratch+" 2>&1 && echo chmod done; true")
		if !strings.Contains(out, "Seccomp:\t"+tc.mode+"\n") || !strings.Contains(out, tc.chmod) {
			t.Errorf("%s: exec saw %q, want seccomp mode %s and %q", tc.id, out, tc.mode, tc.chmod)
		}
	}
	bad := withProfile("relative", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "block-chmod.json"}, false)
	if _, err := e.b.CreateContainer(ctx, "scbad", "podc", bad, pcfg); !errors.Is(err, runtimes.ErrInvalid) {
		t.Errorf("relative localhost profile: %v, want ErrInvalid", err)
	}
}
