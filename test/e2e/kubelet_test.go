//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kubetest "corral.io/corral/test/kubelet"
)

const tickerManifest = `apiVersion: v1
kind: Pod
metadata:
  name: ticker
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

// webManifest is a pod-network static pod whose readiness kubelet probes
// over HTTP on the pod IP (%q: the server script).
const webManifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  annotations:
    corral.io/runtime: native
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: localhost/corral/host:latest
    imagePullPolicy: Never
    command: ["/usr/bin/python3", %q]
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {port: 8080, path: /index.html}
      periodSeconds: 1
    resources:
      limits: {cpu: 200m, memory: 64Mi}
`

// TestKubeletStaticPod runs the real kubelet v1.37.2 standalone against a
// Corral of its own: a static pod for the native runtime becomes Running and
// Ready in kubelet's /pods, its container is a Corral unit, its logs land in
// kubelet's pod log files, and removing the manifest tears it down.
func TestKubeletStaticPod(t *testing.T) {
	kubelet := tool(t, "kubelet")
	dir := scratch(t, "kubelet")
	cni := newCNINet(t, dir)
	// Registered before the node so that it runs after the node stopped:
	// the pods' cgroups sit under kubelet's kubepods (cgroup_parent).
	kubetest.RestoreHost(t)
	n := startNode(t, cni.config())

	manifests := filepath.Join(dir, "manifests")
	podLogs := filepath.Join(dir, "podlogs")
	rootDir := filepath.Join(dir, "root")
	for _, d := range []string{manifests, podLogs, rootDir} {
		os.MkdirAll(d, 0o755)
	}
	port, roPort, healthz := freePort(t), freePort(t), freePort(t)
	nodeName := fmt.Sprintf("corral-e2e-%d", os.Getpid())
	ep := "unix://" + n.sock
	cfg := writeFile(t, dir, "kubelet.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %s
imageServiceEndpoint: %s
staticPodPath: %s
podLogsDir: %s
volumePluginDir: %s
fileCheckFrequency: 1s
syncFrequency: 5s
address: 127.0.0.1
port: %d
readOnlyPort: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
`, ep, ep, manifests, podLogs, filepath.Join(dir, "volume-plugins"), port, roPort, healthz))

	klog, err := os.Create(filepath.Join(dir, "kubelet.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer klog.Close()
	kl := exec.Command(kubelet, "--config", cfg, "--root-dir", rootDir, "--hostname-override", nodeName, "--v", "2")
	kl.Stdout, kl.Stderr = klog, klog
	kl.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := kl.Start(); err != nil {
		t.Fatal(err)
	}
	klDone := make(chan struct{})
	go func() { kl.Wait(); close(klDone) }()
	// Cleanups run last-in first-out: kubelet stops before Corral does.
	t.Cleanup(func() {
		kl.Process.Signal(syscall.SIGTERM)
		select {
		case <-klDone:
		case <-time.After(30 * time.Second):
			kl.Process.Kill()
			<-klDone
		}
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(dir, "kubelet.log"))
			t.Logf("kubelet log (tail):\n%s", tail(string(data), 60))
		}
		keep := filepath.Join(resultsDir(t), "kubelet-"+time.Now().UTC().Format("20060102T150405Z")+".log")
		if data, err := os.ReadFile(filepath.Join(dir, "kubelet.log")); err == nil {
			os.WriteFile(keep, data, 0o644)
		}
	})

	eventually(t, "kubelet healthz", 60*time.Second, func() error {
		select {
		case <-klDone:
			data, _ := os.ReadFile(filepath.Join(dir, "kubelet.log"))
			t.Fatalf("kubelet exited:\n%s", tail(string(data), 40))
		default:
		}
		_, err := kubetest.GetBody(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz))
		return err
	})

	t0 := time.Now()
	dropManifest(t, manifests, "ticker.yaml", tickerManifest)
	www := filepath.Join(dir, "www")
	os.MkdirAll(www, 0o755)
	writeFile(t, www, "index.html", "kubelet web pod\n")
	// A plain TCPServer: http.server's HTTPServer resolves its own name at
	// bind, which waits for DNS timeouts in a pod network.
	script := writeFile(t, dir, "server.py", `import functools, http.server, socketserver
socketserver.TCPServer(("0.0.0.0", 8080), functools.partial(http.server.SimpleHTTPRequestHandler, directory=`+
		strconv.Quote(www)+`)).serve_forever()
`)
	dropManifest(t, manifests, "web.yaml", fmt.Sprintf(webManifest, script))

	podsURL := fmt.Sprintf("http://127.0.0.1:%d/pods", roPort)
	pod := waitReady(t, podsURL, "ticker-"+nodeName)
	t.Logf("manifest → Running/Ready in kubelet's /pods: %s", time.Since(t0).Round(10*time.Millisecond))
	if len(pod.Status.ContainerStatuses) != 1 || !strings.HasPrefix(pod.Status.ContainerStatuses[0].ContainerID, "corral://") {
		t.Errorf("container statuses = %+v, want one container with a corral:// ID", pod.Status.ContainerStatuses)
	}
	// The pod-network pod is Ready only once kubelet's HTTP readiness probe
	// reached the server on the pod's CNI address.
	web := waitReady(t, podsURL, "web-"+nodeName)
	t.Logf("pod-network pod Ready (HTTP probe): %s", time.Since(t0).Round(10*time.Millisecond))
	_, ipnet, _ := net.ParseCIDR(cni.subnet)
	if ip := net.ParseIP(web.Status.PodIP); ip == nil || !ipnet.Contains(ip) {
		t.Errorf("web pod IP = %q, want one in %s", web.Status.PodIP, cni.subnet)
	} else if body := httpGet(t, "http://"+net.JoinHostPort(web.Status.PodIP, "8080")+"/index.html", 10*time.Second); body != "kubelet web pod\n" {
		t.Errorf("GET web pod = %q", body)
	}

	// The container is a unit of Corral's unit engine.
	ctrIDs := n.must("ps", "-q", "--name", "^tick$", "--state", "Running")
	if len(strings.Fields(ctrIDs)) != 1 {
		t.Fatalf("crictl ps for the tick container = %q", ctrIDs)
	}
	unit := containerUnit(t, n, ctrIDs)

	// Logs: kubelet's own pod log files, in its format.
	var logFile string
	eventually(t, "the container log file in podLogsDir", 20*time.Second, func() error {
		m, _ := filepath.Glob(filepath.Join(podLogs, "default_ticker-"+nodeName+"_*", "tick", "*.log"))
		if len(m) == 0 {
			return fmt.Errorf("no log file under %s", podLogs)
		}
		data, err := os.ReadFile(m[0])
		if err != nil {
			return err
		}
		if strings.Count(string(data), " stdout F tick\n") < 2 {
			return fmt.Errorf("%s: %q", m[0], data)
		}
		logFile = m[0]
		return nil
	})
	checkKubeletLog(t, logFile, map[string]string{"stdout": "tick"})
	// ... and kubelet serves them back over its API.
	logs, err := kubetest.GetBody(fmt.Sprintf("https://127.0.0.1:%d/containerLogs/default/ticker-%s/tick", port, nodeName))
	if err != nil || !strings.Contains(logs, "tick\n") {
		t.Errorf("kubelet containerLogs = %q, %v", logs, err)
	}

	// Removing the manifests tears the pods down: the container units and
	// the sandboxes go away.
	os.Remove(filepath.Join(manifests, "ticker.yaml"))
	os.Remove(filepath.Join(manifests, "web.yaml"))
	t0 = time.Now()
	eventually(t, "container unit gone after the manifest is removed", 60*time.Second, func() error {
		out, err := n.ctl("list-units", "--all")
		if err != nil {
			return err
		}
		if strings.Contains(out, unit) {
			return fmt.Errorf("%s still listed", unit)
		}
		return nil
	})
	t.Logf("manifest removed → container unit gone: %s", time.Since(t0).Round(10*time.Millisecond))
	eventually(t, "no containers in Corral", 60*time.Second, func() error {
		if out := n.must("ps", "-a", "-q"); out != "" {
			return fmt.Errorf("crictl ps -a = %q", out)
		}
		return nil
	})
	eventually(t, "pods gone from kubelet's /pods", 60*time.Second, func() error {
		for _, name := range []string{"ticker-", "web-"} {
			if _, err := findPod(podsURL, name+nodeName); err == nil {
				return fmt.Errorf("%s still listed", name+nodeName)
			}
		}
		return nil
	})
	// Kubelet stops the sandboxes at once and removes them only at its next
	// garbage collection (a minute later); stopped is enough here.
	eventually(t, "no ready pods in Corral", 60*time.Second, func() error {
		if out := n.must("pods", "-q", "--state", "Ready"); out != "" {
			return fmt.Errorf("crictl pods --state Ready = %q", out)
		}
		return nil
	})
	t.Logf("manifests removed → sandboxes stopped: %s", time.Since(t0).Round(10*time.Millisecond))
}

// dropManifest writes a static pod manifest atomically (a dot-file renamed
// into place): kubelet must never read half a file.
func dropManifest(t *testing.T, dir, name, text string) {
	t.Helper()
	tmp := writeFile(t, dir, "."+name+".tmp", text)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for a pod to be Running with Ready=True in kubelet's /pods.
func waitReady(t *testing.T, podsURL, name string) kubePod {
	t.Helper()
	var pod kubePod
	eventually(t, name+" Running and Ready in kubelet's /pods", 90*time.Second, func() error {
		p, err := findPod(podsURL, name)
		if err != nil {
			return err
		}
		pod = p
		if p.Status.Phase != "Running" {
			return fmt.Errorf("phase %q", p.Status.Phase)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				return nil
			}
		}
		return fmt.Errorf("not Ready: %+v", p.Status.Conditions)
	})
	return pod
}

type kubePod struct {
	Metadata struct{ Name string } `json:"metadata"`
	Status   struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type, Status string
		} `json:"conditions"`
		ContainerStatuses []struct {
			Name        string `json:"name"`
			ContainerID string `json:"containerID"`
			Ready       bool   `json:"ready"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

func findPod(url, name string) (kubePod, error) {
	body, err := kubetest.GetBody(url)
	if err != nil {
		return kubePod{}, err
	}
	var list struct{ Items []kubePod }
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		return kubePod{}, fmt.Errorf("%s: %w", url, err)
	}
	for _, p := range list.Items {
		if p.Metadata.Name == name {
			return p, nil
		}
	}
	return kubePod{}, fmt.Errorf("pod %s not in %s (%d pods)", name, url, len(list.Items))
}
