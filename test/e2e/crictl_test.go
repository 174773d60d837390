//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const hostImage = "localhost/corral/host:latest"

// NamespaceMode values.
const (
	netPod  = 0
	netNode = 2
)

// podJSON is a crictl pod config; network is a NamespaceMode number
// (crictl's decoder takes numbers only): 0 POD, 2 NODE.
func podJSON(name, logDir string, network int) string {
	return fmt.Sprintf(`{"metadata":{"name":%q,"namespace":"e2e","uid":"%s-uid","attempt":0},
"hostname":"%s-host","log_directory":%q,"annotations":{"corral.io/runtime":"native"},
"linux":{"security_context":{"namespace_options":{"network":%d}}}}`, name, name, name, logDir, network)
}

// ctrJSON is a crictl container config running argv on the host image.
func ctrJSON(name string, argv ...string) string {
	cmd, _ := json.Marshal(argv)
	return fmt.Sprintf(`{"metadata":{"name":%q},"image":{"image":%q},"command":%s,
"envs":[{"key":"E2E","value":"yes"}],"log_path":"%s/0.log"}`, name, hostImage, cmd, name)
}

// kubeletLogLine is the CRI log format kubelet reads.
var kubeletLogLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (stdout|stderr) (P|F) (.*)$`)

func TestCrictlHostNetworkPod(t *testing.T) {
	n := startNode(t, "")
	dir := scratch(t, "hostpod")
	logDir := filepath.Join(dir, "logs")
	pod := writeFile(t, dir, "pod.json", podJSON("hostpod", logDir, netNode))
	ctr := writeFile(t, dir, "ctr.json", ctrJSON("ticker", "/bin/sh", "-c", `echo "env=$E2E"; while true; do echo tick; echo tock >&2; sleep 0.2; done`))

	podID := n.must("runp", "--runtime", "native", pod)
	ctrID := n.must("create", podID, ctr, pod)
	n.must("start", ctrID)

	eventually(t, "container running", 10*time.Second, func() error {
		if out := n.must("ps", "-q", "--state", "Running", "--id", ctrID); out != ctrID {
			return fmt.Errorf("crictl ps --state Running = %q", out)
		}
		return nil
	})

	// exec runs in the container's context: its environment, in its cgroup.
	if out := n.must("exec", ctrID, "/bin/sh", "-c", "echo $E2E; cat /proc/self/cgroup"); !strings.HasPrefix(out, "yes\n") || !strings.Contains(out, n.cgroup) {
		t.Errorf("crictl exec = %q, want E2E=yes and a cgroup under %s", out, n.cgroup)
	}
	if _, err := n.crictl(10*time.Second, "exec", ctrID, "/bin/sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit code 3") {
		t.Errorf("crictl exec of exit 3: err = %v, want exit code 3", err)
	}

	eventually(t, "crictl logs show both streams", 10*time.Second, func() error {
		out, err := n.crictl(10*time.Second, "logs", ctrID)
		if err != nil {
			return err
		}
		// crictl logs writes stderr lines to its stderr, which crictl()
		// does not return on success; stdout must hold the ticks.
		if !strings.Contains(out, "env=yes\n") || !strings.Contains(out, "tick\n") {
			return fmt.Errorf("crictl logs = %q", out)
		}
		return nil
	})
	// The file at log_path is in kubelet's format, both streams.
	logFile := filepath.Join(logDir, "ticker", "0.log")
	checkKubeletLog(t, logFile, map[string]string{"stdout": "tick", "stderr": "tock"})

	// stats come from the container's cgroup: a running shell uses memory.
	var stats struct {
		Stats []struct {
			Attributes struct{ ID string } `json:"attributes"`
			CPU        struct {
				UsageCoreNanoSeconds struct{ Value string } `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory struct {
				WorkingSetBytes struct{ Value string } `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"stats"`
	}
	eventually(t, "crictl stats non-zero", 10*time.Second, func() error {
		out, err := n.crictl(10*time.Second, "stats", "-o", "json", "--id", ctrID)
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &stats); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if len(stats.Stats) != 1 || stats.Stats[0].Attributes.ID != ctrID {
			return fmt.Errorf("stats for %s: %s", ctrID, out)
		}
		s := stats.Stats[0]
		if s.CPU.UsageCoreNanoSeconds.Value == "" || s.CPU.UsageCoreNanoSeconds.Value == "0" ||
			s.Memory.WorkingSetBytes.Value == "" || s.Memory.WorkingSetBytes.Value == "0" {
			return fmt.Errorf("zero cpu or memory in stats: %s", out)
		}
		return nil
	})
	if out := n.must("statsp", "-o", "json", "--id", podID); !strings.Contains(out, podID) {
		t.Errorf("crictl statsp = %s, want the pod", out)
	}

	// The container is a unit of the unit engine, with its logs there too.
	unit := containerUnit(t, n, ctrID)
	eventually(t, "unit logs", 10*time.Second, func() error {
		out, err := n.ctl("logs", "-n", "50", "-u", unit)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "tick") {
			return fmt.Errorf("corralctl logs %s = %q", unit, out)
		}
		return nil
	})

	// stop: the process dies and the container reports Exited.
	var pid int
	fmt.Sscan(inspectField(t, n, "inspect", ctrID, "info", "pid"), &pid)
	n.must("stop", "--timeout", "2", ctrID)
	if out := n.must("ps", "-a", "-q", "--state", "Exited", "--id", ctrID); out != ctrID {
		t.Errorf("after stop, crictl ps --state Exited = %q", out)
	}
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		t.Errorf("container process %d still alive after stop", pid)
	}
	n.must("stop", "--timeout", "2", ctrID) // idempotent
	n.must("rm", ctrID)
	if out := n.must("ps", "-a", "-q"); out != "" {
		t.Errorf("after rm, crictl ps -a = %q", out)
	}
	n.must("stopp", podID)
	// (crictl itself resolves the ID with PodSandboxStatus before it
	// removes, so a second `crictl rmp` fails in crictl, for every runtime;
	// critest's Idempotence specs check RemovePodSandbox itself.)
	n.must("rmp", podID)
	if out := n.must("pods", "-q"); out != "" {
		t.Errorf("after rmp, crictl pods = %q", out)
	}
	eventually(t, "unit gone", 10*time.Second, func() error {
		out, err := n.ctl("list-units", "--all")
		if err != nil {
			return err
		}
		if strings.Contains(out, unit) {
			return fmt.Errorf("%s still listed:\n%s", unit, out)
		}
		return nil
	})
}

// containerUnit finds the container's unit in `corralctl list-units` by the
// description the native backend gives it ("CRI container <ns>_<pod>_<ctr>")
// and checks it agrees with what `crictl inspect` reports.
func containerUnit(t *testing.T, n *node, ctrID string) string {
	t.Helper()
	want := inspectField(t, n, "inspect", ctrID, "info", "unit")
	out, err := n.ctl("list-units")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && strings.HasPrefix(f[0], "cri-") && strings.HasSuffix(f[0], ".service") {
			if want != "" && f[0] != want {
				continue
			}
			if f[2] != "active" || f[3] != "running" {
				t.Errorf("unit %s is %s/%s, want active/running", f[0], f[2], f[3])
			}
			return f[0]
		}
	}
	t.Fatalf("no container unit (inspect says %q) in corralctl list-units:\n%s", want, out)
	return ""
}

// inspectField reads info.<path> from `crictl inspect(p) -o json`.
func inspectField(t *testing.T, n *node, verb, id string, path ...string) string {
	t.Helper()
	out := n.must(verb, "-o", "json", id)
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("crictl %s: %v\n%s", verb, err, out)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		// Not fmt.Sprint: PIDs above 999999 would print as 1.948569e+06.
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// checkKubeletLog checks every line of a CRI log file is in kubelet's format
// and that each stream carries its expected message.
func checkKubeletLog(t *testing.T, path string, want map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("container log file: %v", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := kubeletLogLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Errorf("%s: line not in kubelet's format: %q", path, sc.Text())
			continue
		}
		if w, ok := want[m[3]]; ok && m[5] == w {
			seen[m[3]] = true
		}
	}
	for s := range want {
		if !seen[s] {
			t.Errorf("%s: no %s line %q", path, s, want[s])
		}
	}
}

// cniNet is a bridge network of a test's own: unique bridge name and
// subnet, IPAM state in the test's scratch dir, the bridge deleted at the end.
type cniNet struct {
	name, bridge, subnet, confDir, ipamDir string
}

func newCNINet(t *testing.T, dir string) cniNet {
	t.Helper()
	k := os.Getpid()%1000*7 + int(seq.Add(1))
	c := cniNet{name: fmt.Sprintf("e2e-%d", k), bridge: fmt.Sprintf("ce2e%d", k%100000),
		subnet:  fmt.Sprintf("10.%d.%d.0/24", 150+k%40, k/40%250),
		confDir: filepath.Join(dir, "net.d"), ipamDir: filepath.Join(dir, "ipam")}
	os.MkdirAll(c.confDir, 0o755)
	writeFile(t, c.confDir, "10-e2e.conflist", fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
 "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
{"type":"portmap","capabilities":{"portMappings":true}},
{"type":"loopback"}]}`, c.name, c.bridge, c.subnet, c.ipamDir))
	t.Cleanup(func() { exec.Command("ip", "link", "del", c.bridge).Run() })
	return c
}

// config is the corral.toml section that points the native backend at it.
func (c cniNet) config() string { return fmt.Sprintf("[cni]\nconf_dir = %q\n", c.confDir) }

func TestCrictlCNIPod(t *testing.T) {
	dir := scratch(t, "cnipod")
	cni := newCNINet(t, dir)
	subnet := cni.subnet
	n := startNode(t, cni.config())

	eventually(t, "NetworkReady", 10*time.Second, func() error {
		out := n.must("info", "-o", "json")
		if !regexp.MustCompile(`"status":\s*true,\s*"type":\s*"NetworkReady"`).MatchString(out) {
			return fmt.Errorf("crictl info: %s", out)
		}
		return nil
	})

	www := filepath.Join(dir, "www")
	os.MkdirAll(www, 0o755)
	writeFile(t, www, "index.html", "served from a corral pod\n")
	logDir := filepath.Join(dir, "logs")
	pod := writeFile(t, dir, "pod.json", podJSON("cnipod", logDir, netPod))
	// A plain TCPServer: http.server's HTTPServer resolves its own name at
	// bind (getfqdn), which waits for DNS timeouts (10 s) in a pod network
	// with no route to the host's resolver.
	server := `import functools, http.server, socketserver
socketserver.TCPServer(("0.0.0.0", 8080), functools.partial(http.server.SimpleHTTPRequestHandler, directory=` +
		strconv.Quote(www) + `)).serve_forever()`
	ctr := writeFile(t, dir, "ctr.json", ctrJSON("web", "/usr/bin/python3", "-c", server))
	podID := n.must("runp", pod)
	ctrID := n.must("create", podID, ctr, pod)
	n.must("start", ctrID)
	t.Cleanup(func() { n.crictl(30*time.Second, "rmp", "-f", podID) })

	ip := inspectField(t, n, "inspectp", podID, "status", "network", "ip")
	_, ipnet, _ := net.ParseCIDR(subnet)
	if ip == "" || !ipnet.Contains(net.ParseIP(ip)) {
		t.Fatalf("pod IP = %q, want one in %s", ip, subnet)
	}
	// The server listens on 0.0.0.0 inside the pod's own network namespace:
	// the host reaches it on the pod IP only.
	body := httpGet(t, "http://"+net.JoinHostPort(ip, "8080")+"/index.html", 20*time.Second)
	if body != "served from a corral pod\n" {
		t.Errorf("GET pod IP = %q", body)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:8080", time.Second); err == nil {
		conn.Close()
		t.Logf("note: something on the host listens on 127.0.0.1:8080; cannot check isolation")
	}
	// The container sees its pod's network, not the host's.
	if out := n.must("exec", ctrID, "/bin/sh", "-c", "cat /proc/net/fib_trie"); !strings.Contains(out, ip) {
		t.Errorf("container's network namespace does not hold %s:\n%s", ip, out)
	}

	// port-forward through the streaming server into the pod's netns.
	local := freePort(t)
	pf := exec.Command(tool(t, "crictl"), "--config", "/dev/null", "-r", "unix://"+n.sock, "-i", "unix://"+n.sock,
		"port-forward", podID, fmt.Sprintf("%d:8080", local))
	var pfOut syncBuffer
	pf.Stdout, pf.Stderr = &pfOut, &pfOut
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Process.Kill(); pf.Wait() })
	if body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/index.html", local), 20*time.Second); body != "served from a corral pod\n" {
		t.Errorf("GET through port-forward = %q (crictl: %s)", body, pfOut.String())
	}

	n.must("stopp", podID)
	n.must("rmp", podID)
	if _, err := os.Stat(filepath.Join(cni.ipamDir, cni.name, ip)); err == nil {
		t.Errorf("IPAM still holds %s after rmp: CNI DEL was not run", ip)
	}
}

// httpGet retries until the server answers (it starts asynchronously).
func httpGet(t *testing.T, url string, limit time.Duration) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	var body string
	eventually(t, "GET "+url, limit, func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		body = string(b)
		return nil
	})
	return body
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
