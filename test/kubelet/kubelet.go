// Package kubelet runs the real kubelet standalone (no API server, static
// pods only) against a CRI socket, for end-to-end tests. It carries the
// lessons of running kubelet on a shared test machine: kubelet changes
// sysctls and writes outside its root dir, so Start restores the host
// afterwards; ports, node name and root dir are unique per call; and
// kubelet garbage-collects every CRI pod it does not own, so the endpoint
// must be a runtime of the test's own.
//
// The binary comes from hack/tools/kubelet.sh (v1.37.2). test/e2e's kubelet
// test does the same by hand; new tests use this package.
package kubelet

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sysctls are the kernel settings kubelet changes at start
// (setupKernelTunables); Start puts them back.
var Sysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// Options of one kubelet.
type Options struct {
	Binary   string // kubelet, from hack/tools/kubelet.sh
	Endpoint string // CRI endpoint, unix://...
	// Dir is a scratch dir of the test's own, under /var/tmp and 0755:
	// kubelet's checks and unprivileged pod processes traverse it.
	// Manifests, pod logs and kubelet's root dir go below it.
	Dir string
	// NodeName defaults to corral-<test pid>-<unique>.
	NodeName string
	// LogKeep, if set, is where kubelet's log is copied at the end.
	LogKeep string
}

// Kubelet is one running kubelet.
type Kubelet struct {
	NodeName     string
	Manifests    string // staticPodPath
	PodLogs      string // podLogsDir
	Port, ROPort int    // authenticated API, read-only API (/pods)
	HealthzPort  int
	dir, logPath string
	cmd          *exec.Cmd
	done         chan struct{}
	t            *testing.T
}

// RestoreHost undoes, at the end of the test, what kubelet changes outside
// its root dir: the sysctls it tunes, the kubepods cgroups it creates at the
// top of every hierarchy, and /var/lib/kubelet (its device-plugin socket dir
// is fixed) when that did not exist before. Call it before the runtime is
// started: cleanups run last-in first-out, and the pods' cgroups sit under
// kubepods until the runtime has stopped them.
func RestoreHost(t *testing.T) {
	t.Helper()
	saved := map[string]string{}
	for _, k := range Sysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			saved[k] = strings.TrimSpace(string(b))
		}
	}
	var newCgroups []string
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hier {
		if _, err := os.Stat(filepath.Join(h, "kubepods")); err != nil {
			newCgroups = append(newCgroups, filepath.Join(h, "kubepods"))
		}
	}
	_, err := os.Stat("/var/lib/kubelet")
	varLibExisted := err == nil
	_, err = os.Stat("/var/lib/kubelet/device-plugins")
	devPluginsExisted := err == nil
	t.Cleanup(func() {
		for k, v := range saved {
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
				t.Errorf("restore sysctl %s=%s: %v", k, v, err)
			}
		}
		for _, c := range newCgroups {
			removeTree(c)
		}
		if !devPluginsExisted {
			os.RemoveAll("/var/lib/kubelet/device-plugins")
		}
		if !varLibExisted {
			UnmountUnder("/var/lib/kubelet")
			os.RemoveAll("/var/lib/kubelet")
		}
	})
}

// Start runs kubelet and waits for its healthz. It stops kubelet (SIGTERM,
// then SIGKILL after 30 s) and unmounts what it mounted under Dir in a
// cleanup registered here, so it runs before the runtime's own cleanup
// when the runtime was started first.
func Start(t *testing.T, o Options) *Kubelet {
	t.Helper()
	if o.NodeName == "" {
		o.NodeName = fmt.Sprintf("corral-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	}
	k := &Kubelet{
		NodeName: o.NodeName, dir: o.Dir, t: t, done: make(chan struct{}),
		Manifests: filepath.Join(o.Dir, "manifests"), PodLogs: filepath.Join(o.Dir, "podlogs"),
		Port: FreePort(t), ROPort: FreePort(t), HealthzPort: FreePort(t),
		logPath: filepath.Join(o.Dir, "kubelet.log"),
	}
	rootDir := filepath.Join(o.Dir, "root")
	for _, d := range []string{k.Manifests, k.PodLogs, rootDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(o.Dir, "kubelet.yaml")
	// failCgroupV1/cgroupfs/failSwapOn: these machines have cgroup v1, no
	// systemd and swap; the thresholds keep kubelet from evicting or
	// collecting images on a small disk.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %s
imageServiceEndpoint: %[1]s
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
`, o.Endpoint, k.Manifests, k.PodLogs, filepath.Join(o.Dir, "volume-plugins"), k.Port, k.ROPort, k.HealthzPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(k.logPath)
	if err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command(o.Binary, "--config", cfg, "--root-dir", rootDir, "--hostname-override", k.NodeName, "--v", "2")
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := k.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() { k.cmd.Wait(); logf.Close(); close(k.done) }()
	t.Cleanup(func() {
		k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.done:
		case <-time.After(30 * time.Second):
			k.cmd.Process.Kill()
			<-k.done
		}
		if t.Failed() {
			t.Logf("kubelet log (tail):\n%s", k.LogTail(60))
		}
		if o.LogKeep != "" {
			if data, err := os.ReadFile(k.logPath); err == nil {
				os.WriteFile(o.LogKeep, data, 0o644)
			}
		}
		// The root dir's self bind mount, and pod volumes.
		UnmountUnder(o.Dir)
	})
	Eventually(t, "kubelet healthz", 60*time.Second, func() error {
		select {
		case <-k.done:
			t.Fatalf("kubelet exited:\n%s", k.LogTail(40))
		default:
		}
		_, err := GetBody(fmt.Sprintf("http://127.0.0.1:%d/healthz", k.HealthzPort))
		return err
	})
	return k
}

// LogTail is the last n lines of kubelet's log.
func (k *Kubelet) LogTail(n int) string {
	data, _ := os.ReadFile(k.logPath)
	l := strings.Split(string(data), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Drop writes a static pod manifest atomically (a dot-file renamed into
// place): kubelet must never read half a file.
func (k *Kubelet) Drop(name, manifest string) {
	k.t.Helper()
	tmp := filepath.Join(k.Manifests, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.Manifests, name)); err != nil {
		k.t.Fatal(err)
	}
}

// Remove deletes a manifest: kubelet tears the pod down.
func (k *Kubelet) Remove(name string) {
	if err := os.Remove(filepath.Join(k.Manifests, name)); err != nil {
		k.t.Error(err)
	}
}

// PodName is the name kubelet gives a static pod: <name>-<node>.
func (k *Kubelet) PodName(name string) string { return name + "-" + k.NodeName }

// WaitReady waits for the static pod name to be Running with Ready=True in
// kubelet's /pods and returns it.
func (k *Kubelet) WaitReady(name string, limit time.Duration) Pod {
	k.t.Helper()
	var pod Pod
	Eventually(k.t, name+" Running and Ready in kubelet's /pods", limit, func() error {
		p, err := k.Pod(name)
		if err != nil {
			return err
		}
		pod = p
		if p.Status.Phase != "Running" {
			return fmt.Errorf("phase %q, containers %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		if !p.Ready() {
			return fmt.Errorf("not Ready: %+v", p.Status.Conditions)
		}
		return nil
	})
	return pod
}

// Pod finds the static pod name in kubelet's /pods.
func (k *Kubelet) Pod(name string) (Pod, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/pods", k.ROPort)
	body, err := GetBody(url)
	if err != nil {
		return Pod{}, err
	}
	var list struct{ Items []Pod }
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		return Pod{}, fmt.Errorf("%s: %w", url, err)
	}
	full := k.PodName(name)
	for _, p := range list.Items {
		if p.Metadata.Name == full {
			return p, nil
		}
	}
	return Pod{}, fmt.Errorf("pod %s not in %s (%d pods)", full, url, len(list.Items))
}

// Pod is the part of a v1.Pod the tests read.
type Pod struct {
	Metadata struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type, Status string
		} `json:"conditions"`
		ContainerStatuses []struct {
			Name        string `json:"name"`
			ContainerID string `json:"containerID"`
			ImageID     string `json:"imageID"`
			Ready       bool   `json:"ready"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// Ready reports the pod's Ready condition.
func (p Pod) Ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return true
		}
	}
	return false
}

// GetBody GETs url; kubelet's authenticated port serves a self-signed
// certificate, which is accepted.
func GetBody(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Eventually polls f until it succeeds; the limit only prevents a hang.
func Eventually(t *testing.T, what string, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, limit, err)
}

// UnmountUnder lazily unmounts every mount at or below dir, deepest first.
func UnmountUnder(dir string) {
	data, _ := os.ReadFile("/proc/self/mounts")
	var ms []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			ms = append(ms, f[1])
		}
	}
	for i := len(ms) - 1; i >= 0; i-- {
		syscall.Unmount(ms[i], syscall.MNT_DETACH)
	}
}

func removeTree(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	os.Remove(dir)
}
