//go:build e2e

package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral.io/corral/test/kubelet"
)

// The three static pods of TestKubeletNativeContainerVMStaticPods: one per
// kind of pod, all on one Corral socket. The container and VM pods pull the
// same offline busybox through Corral (containerd stores it); kubelet's
// exec readiness probes go through Corral's ExecSync, for the VM pod over
// the guest channel.
const (
	kNative = `apiVersion: v1
kind: Pod
metadata:
  name: native
  namespace: default
  annotations:
    corral.io/runtime: native
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 2
  containers:
  - name: tick
    image: localhost/corral/host:latest
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "while true; do echo tick; sleep 1; done"]
`
	kContainer = `apiVersion: v1
kind: Pod
metadata:
  name: boxed
  namespace: default
  annotations:
    corral.io/runtime: runc
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: box
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "echo boxed > /tmp/ready; while true; do echo box; sleep 1; done"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
`
	kVM = `apiVersion: v1
kind: Pod
metadata:
  name: vmbox
  namespace: default
  annotations:
    corral.io/runtime: vm
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: vbox
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    imagePullPolicy: IfNotPresent
    command: ["/bin/sh", "-c", "echo vm > /tmp/ready; while true; do echo vmbox; sleep 1; done"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 2
      timeoutSeconds: 10
`
)

// TestKubeletNativeContainerVMStaticPods runs the real kubelet v1.37.2
// standalone (test/kubelet) against one Corral socket with a native, a
// container (containerd as a Corral unit) and a VM static pod: all three
// become Running and Ready in kubelet's /pods, each on its own backend;
// removing the manifests tears all three down and leaves no QEMU.
func TestKubeletNativeContainerVMStaticPods(t *testing.T) {
	kbin := tool(t, "kubelet")
	dir, err := os.MkdirTemp("/var/tmp", "corral-vm-kubelet-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { kubelet.UnmountUnder(dir); os.RemoveAll(dir) })
	// Before the node: cleanups run last-in first-out, and the pods'
	// cgroups sit under kubelet's kubepods until the node has stopped.
	kubelet.RestoreHost(t)

	off := startOfflineUnit(t, "corral-vm-kctd-")
	units := filepath.Join(off.work, "units")
	os.MkdirAll(units, 0o755)
	if err := os.WriteFile(filepath.Join(units, "containerd.service"), []byte(off.unit()), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNodeOpts(t, nodeOpts{def: "runc", extra: off.extra(), env: []string{off.path}, unitDir: units})
	ctl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "corralctl"), append([]string{"--root", n.root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("corralctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ctl("start", "containerd.service")
	off.waitContainerd(t)

	results := os.Getenv("CORRAL_RESULTS")
	if results == "" {
		results = "/var/tmp/corral-vm-results"
	}
	os.MkdirAll(results, 0o755)
	k := kubelet.Start(t, kubelet.Options{
		Binary: kbin, Endpoint: "unix://" + filepath.Join(n.root, "run", "corral", "cri.sock"), Dir: dir,
		NodeName: fmt.Sprintf("corral-vm-%d", os.Getpid()),
		LogKeep:  filepath.Join(results, "kubelet-"+time.Now().UTC().Format("20060102T150405Z")+".log"),
	})

	t0 := time.Now()
	k.Drop("native.yaml", kNative)
	k.Drop("boxed.yaml", kContainer)
	k.Drop("vmbox.yaml", kVM)
	ready := map[string]kubelet.Pod{}
	for _, name := range []string{"native", "boxed", "vmbox"} {
		ready[name] = k.WaitReady(name, 240*time.Second)
		t.Logf("%s Running/Ready %s after the manifests", name, time.Since(t0).Round(10*time.Millisecond))
	}
	for name, p := range ready {
		if len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready ||
			!strings.HasPrefix(p.Status.ContainerStatuses[0].ContainerID, "corral://") {
			t.Errorf("%s: container statuses = %+v, want one ready container with a corral:// ID", name, p.Status.ContainerStatuses)
		}
	}
	if ip := ready["vmbox"].Status.PodIP; ip == "" {
		t.Errorf("VM pod has no pod IP in kubelet's /pods")
	}

	// One socket, three handlers; exactly one VM.
	pods := n.crictlOK("pods", "--state", "Ready", "-o", "json")
	for _, want := range []string{`"runtimeHandler": "native"`, `"runtimeHandler": "runc"`, `"runtimeHandler": "vm"`,
		k.PodName("native"), k.PodName("boxed"), k.PodName("vmbox")} {
		if !strings.Contains(pods, want) {
			t.Errorf("crictl pods through Corral lacks %s:\n%s", want, pods)
		}
	}
	if q := qemuPIDs(n.root); len(q) != 1 {
		t.Errorf("QEMU processes of this node: %v, want 1 (the VM pod)", q)
	}
	// The VM pod's container runs in the guest: its kernel is the VM's.
	vmID := strings.TrimPrefix(ready["vmbox"].Status.ContainerStatuses[0].ContainerID, "corral://")
	kver, _ := os.ReadFile(filepath.Join(n.assets, "kver"))
	if got := n.crictlOK("exec", vmID, "uname", "-r"); got != strings.TrimSpace(string(kver)) {
		t.Errorf("exec uname -r in the VM pod = %q, want the guest kernel %q", got, strings.TrimSpace(string(kver)))
	}
	// Logs of all three land in kubelet's pod log files.
	for _, c := range []struct{ pod, ctr, line string }{{"native", "tick", "tick"}, {"boxed", "box", "box"}, {"vmbox", "vbox", "vmbox"}} {
		kubelet.Eventually(t, c.pod+" log file in podLogsDir", 30*time.Second, func() error {
			m, _ := filepath.Glob(filepath.Join(k.PodLogs, "default_"+k.PodName(c.pod)+"_*", c.ctr, "*.log"))
			if len(m) == 0 {
				return fmt.Errorf("no log file for %s/%s under %s", c.pod, c.ctr, k.PodLogs)
			}
			data, err := os.ReadFile(m[0])
			if err != nil {
				return err
			}
			if !strings.Contains(string(data), " stdout F "+c.line+"\n") {
				return fmt.Errorf("%s: %q", m[0], tail(string(data), 5))
			}
			return nil
		})
	}

	for _, m := range []string{"native.yaml", "boxed.yaml", "vmbox.yaml"} {
		k.Remove(m)
	}
	t0 = time.Now()
	kubelet.Eventually(t, "all three pods gone from kubelet's /pods", 120*time.Second, func() error {
		for _, name := range []string{"native", "boxed", "vmbox"} {
			if _, err := k.Pod(name); err == nil {
				return fmt.Errorf("%s still listed", name)
			}
		}
		return nil
	})
	kubelet.Eventually(t, "no running containers, no ready pods and no QEMU", 120*time.Second, func() error {
		if out := n.crictlOK("ps", "-q"); out != "" {
			return fmt.Errorf("crictl ps = %q", out)
		}
		if out := n.crictlOK("pods", "-q", "--state", "Ready"); out != "" {
			return fmt.Errorf("crictl pods --state Ready = %q", out)
		}
		if q := qemuPIDs(n.root); len(q) != 0 {
			return fmt.Errorf("QEMU processes %v", q)
		}
		return nil
	})
	t.Logf("manifests removed → containers stopped, sandboxes not ready, no QEMU: %s", time.Since(t0).Round(10*time.Millisecond))
}
