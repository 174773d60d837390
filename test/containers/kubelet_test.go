//go:build e2e

package containers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"corral.io/corral/test/kubelet"
)

// nativeManifest is a host-network static pod on the native runtime: its
// container is a Corral unit running the host image.
const nativeManifest = `apiVersion: v1
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

// containerManifest is a pod-network static pod on containerd + runc,
// pulled by kubelet through Corral from the offline registry; kubelet's
// exec readiness probe goes through Corral's ExecSync to containerd.
const containerManifest = `apiVersion: v1
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

// TestKubeletNativeAndContainerStaticPods runs the real kubelet v1.37.2
// standalone on one Corral socket with a native static pod and a container
// static pod (containerd as a Corral unit): both become Running and Ready in
// kubelet's /pods, each is served by its own backend, and removing the
// manifests tears both down.
func TestKubeletNativeAndContainerStaticPods(t *testing.T) {
	bin := tool(t, "kubelet")
	dir, err := os.MkdirTemp("/var/tmp", "corral-ctr-kubelet-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { kubelet.UnmountUnder(dir); os.RemoveAll(dir) })
	// Before the node: cleanups run last-in first-out, and the pods'
	// cgroups sit under kubelet's kubepods until the node has stopped.
	kubelet.RestoreHost(t)
	n := start(t, "")
	results := os.Getenv("CORRAL_RESULTS")
	if results == "" {
		results = "/var/tmp/corral-containers-results"
	}
	os.MkdirAll(results, 0o755)
	k := kubelet.Start(t, kubelet.Options{
		Binary: bin, Endpoint: "unix://" + n.criSock(), Dir: dir,
		NodeName: fmt.Sprintf("corral-ctr-%d", os.Getpid()),
		LogKeep:  filepath.Join(results, "kubelet-"+time.Now().UTC().Format("20060102T150405Z")+".log"),
	})

	t0 := time.Now()
	k.Drop("native.yaml", nativeManifest)
	k.Drop("boxed.yaml", containerManifest)
	native := k.WaitReady("native", 120*time.Second)
	t.Logf("native pod Running/Ready: %s after the manifests", time.Since(t0).Round(10*time.Millisecond))
	boxed := k.WaitReady("boxed", 120*time.Second)
	t.Logf("container pod Running/Ready: %s after the manifests", time.Since(t0).Round(10*time.Millisecond))

	for _, p := range []kubelet.Pod{native, boxed} {
		if len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready ||
			!strings.HasPrefix(p.Status.ContainerStatuses[0].ContainerID, "corral://") {
			t.Errorf("%s: container statuses = %+v, want one ready container with a corral:// ID", p.Metadata.Name, p.Status.ContainerStatuses)
		}
	}

	// Both pods are on the one Corral socket, each under its own handler.
	pods := n.crictlMust("pods", "--state", "Ready", "-o", "json")
	for _, want := range []string{`"runtimeHandler": "native"`, `"runtimeHandler": "runc"`, k.PodName("native"), k.PodName("boxed")} {
		if !strings.Contains(pods, want) {
			t.Errorf("crictl pods through Corral lacks %s:\n%s", want, pods)
		}
	}
	// The container pod is containerd's (Corral adopts its IDs), the
	// native one is not.
	boxID := strings.TrimPrefix(boxed.Status.ContainerStatuses[0].ContainerID, "corral://")
	direct := n.crictlMust("@"+n.sock, "ps", "-q", "--state", "Running")
	if !strings.Contains(direct, boxID) {
		t.Errorf("container %s of the container pod is not running in containerd: %q", boxID, direct)
	}
	nativeID := strings.TrimPrefix(native.Status.ContainerStatuses[0].ContainerID, "corral://")
	if strings.Contains(direct, nativeID) {
		t.Errorf("native container %s is listed by containerd", nativeID)
	}
	if out := n.crictlMust("exec", boxID, "cat", "/tmp/ready"); out != "boxed" {
		t.Errorf("exec in the container pod = %q", out)
	}
	// Logs of both land in kubelet's pod log files.
	for _, c := range []struct{ pod, ctr, line string }{{"native", "tick", "tick"}, {"boxed", "box", "box"}} {
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
				return fmt.Errorf("%s: %q", m[0], data)
			}
			return nil
		})
	}

	k.Remove("native.yaml")
	k.Remove("boxed.yaml")
	t0 = time.Now()
	kubelet.Eventually(t, "both pods gone from kubelet's /pods", 90*time.Second, func() error {
		for _, name := range []string{"native", "boxed"} {
			if _, err := k.Pod(name); err == nil {
				return fmt.Errorf("%s still listed", name)
			}
		}
		return nil
	})
	kubelet.Eventually(t, "no running containers and no ready pods in Corral", 90*time.Second, func() error {
		if out := n.crictlMust("ps", "-q"); out != "" {
			return fmt.Errorf("crictl ps = %q", out)
		}
		if out := n.crictlMust("pods", "-q", "--state", "Ready"); out != "" {
			return fmt.Errorf("crictl pods --state Ready = %q", out)
		}
		return nil
	})
	t.Logf("manifests removed → containers stopped, sandboxes not ready: %s", time.Since(t0).Round(10*time.Millisecond))
}
