//go:build e2e

// Package vm drives VM pods (handler "vm", runtimes/qemu) through Corral's
// CRI socket with the real crictl: a QEMU microVM per pod, the guest agent
// as its PID 1, exec and logs relayed over virtio-serial.
package vm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var repoRoot, bin string

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	repoRoot = filepath.Join(wd, "..", "..")
	dir, err := os.MkdirTemp("/var/tmp", "corral-vm-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range []string{"corral", "corral-agent", "corralctl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "corral.io/corral/cmd/"+b)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// script runs a hack/ script and returns the last line it prints.
func script(t *testing.T, path string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, path), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

type node struct {
	t       *testing.T
	root    string
	cgroup  string
	crictl  string
	cmd     *exec.Cmd
	out     bytes.Buffer
	exited  chan struct{}
	assets  string
	logsDir string
}

// startNode starts `corral init` in a temp root with the vm handler
// pointing at freshly built (cached) assets.
func startNode(t *testing.T) *node { return startNodeWith(t, "", nil) }

// startNodeWith appends extra to corral.toml (more handlers, [cni]) and
// env to corral's environment.
func startNodeWith(t *testing.T, extra string, env []string) *node {
	t.Helper()
	return startNodeDefault(t, "native", extra, env)
}

// startNodeDefault is startNodeWith with another default handler (the
// handler of pods and pulls that name none).
func startNodeDefault(t *testing.T, def, extra string, env []string) *node {
	t.Helper()
	return startNodeOpts(t, nodeOpts{def: def, extra: extra, env: env})
}

// nodeOpts: def is the default handler, extra is appended to corral.toml,
// env to corral's environment, unitDir is passed as --unit-dir.
type nodeOpts struct {
	def, extra, unitDir string
	env                 []string
}

func startNodeOpts(t *testing.T, o nodeOpts) *node {
	t.Helper()
	def, extra, env := o.def, o.extra, o.env
	n := &node{t: t, exited: make(chan struct{}), crictl: script(t, "hack/tools/crictl.sh")}
	var err error
	if n.root, err = os.MkdirTemp("/var/tmp", "corral-vm-root-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(n.root) })
	n.assets = script(t, "hack/vm/assets.sh", filepath.Join(n.root, "assets"))
	n.logsDir = filepath.Join(n.root, "podlogs")
	n.cgroup = fmt.Sprintf("corral-vm-e2e-%d", os.Getpid())
	cfg := fmt.Sprintf("[cri]\ndefault_handler = %q\n[handlers.native]\nbackend = \"native\"\n"+
		"[handlers.vm]\nbackend = \"qemu\"\nkernel = %q\ninitrd = %q\n",
		def, filepath.Join(n.assets, "vmlinux"), filepath.Join(n.assets, "initrd.img"))
	cfg += extra
	os.MkdirAll(filepath.Join(n.root, "etc", "corral"), 0o755)
	if err := os.WriteFile(filepath.Join(n.root, "etc", "corral", "corral.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--root", n.root, "--cgroup-root", n.cgroup, "--default-target", ""}
	if o.unitDir != "" {
		args = append(args, "--unit-dir", o.unitDir)
	}
	n.cmd = exec.Command(filepath.Join(bin, "corral"), args...)
	n.cmd.Env = append(os.Environ(), env...)
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(n.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := n.try("version"); err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI socket never answered:\n%s", n.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) stop() {
	// VM pods do not outlive the agent's state yet: a test that failed
	// half-way removes its pods first, so that no QEMU, netns mount or
	// CNI lease is left on the host.
	n.try("rmp", "-a", "-f")
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	if n.t.Failed() {
		n.t.Logf("corral output:\n%s", n.out.String())
	}
	for _, c := range []string{"memory", "cpu", "pids", "systemd"} {
		os.Remove(filepath.Join("/sys/fs/cgroup", c, n.cgroup, "kubepods"))
		os.Remove(filepath.Join("/sys/fs/cgroup", c, n.cgroup, "system.slice"))
		os.Remove(filepath.Join("/sys/fs/cgroup", c, n.cgroup))
	}
}

func (n *node) try(args ...string) (string, error) {
	args = append([]string{"-r", "unix://" + filepath.Join(n.root, "run", "corral", "cri.sock"), "-t", "90s"}, args...)
	cmd := exec.Command(n.crictl, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("crictl %s: %v\n%s", strings.Join(args[4:], " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func (n *node) crictlOK(args ...string) string {
	n.t.Helper()
	out, err := n.try(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, _ := json.Marshal(v)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// qemuPIDs lists QEMU processes whose command line mentions dir.
func qemuPIDs(dir string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), "qemu-system") && strings.Contains(string(b), dir) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

func TestVMPodLifecycle(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	podCfg := writeJSON(t, dir, "pod.json", map[string]any{
		"metadata":      map[string]string{"name": "vmpod", "namespace": "default", "uid": "vm-e2e-1"},
		"log_directory": n.logsDir,
		"labels":        map[string]string{"io.kubernetes.pod.name": "vmpod"},
		"linux":         map[string]any{},
	})
	ctrCfg := writeJSON(t, dir, "ctr.json", map[string]any{
		"metadata": map[string]string{"name": "hello"},
		"image":    map[string]string{"image": "localhost/corral/busybox:latest"},
		"command":  []string{"/bin/sh", "-c", "echo hello from $(uname -r); echo oops >&2; exec sleep 3600"},
		"log_path": "hello.log",
		"linux":    map[string]any{},
	})

	t0 := time.Now()
	pod := n.crictlOK("runp", "--runtime", "vm", podCfg)
	tPod := time.Since(t0)
	if pids := qemuPIDs(n.root); len(pids) != 1 {
		t.Fatalf("after runp: %d qemu processes of this node, want 1", len(pids))
	}
	ctr := n.crictlOK("create", pod, ctrCfg, podCfg)
	n.crictlOK("start", ctr)
	tCtr := time.Since(t0)
	t.Logf("runp %s, runp→container running %s", tPod.Round(time.Millisecond), tCtr.Round(time.Millisecond))

	// exec runs in the guest: its kernel is the VM's, not the host's, and
	// PID 1 is the guest agent.
	kver, _ := os.ReadFile(filepath.Join(n.assets, "kver"))
	if got := n.crictlOK("exec", ctr, "uname", "-r"); got != strings.TrimSpace(string(kver)) {
		t.Errorf("exec uname -r = %q, want the guest kernel %q", got, strings.TrimSpace(string(kver)))
	}
	if got := n.crictlOK("exec", ctr, "cat", "/proc/1/cmdline"); !strings.HasPrefix(got, "/init") {
		t.Errorf("guest PID 1 cmdline = %q, want the guest agent /init", got)
	}
	cmd := exec.Command(n.crictl, "-r", "unix://"+filepath.Join(n.root, "run", "corral", "cri.sock"), "exec", ctr, "sh", "-c", "exit 7")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "exit code 7") {
		t.Errorf("exec exit 7: %q %v, want exit code 7", out, err)
	}
	if got := n.crictlOK("exec", "-s", ctr, "sh", "-c", "echo sync"); got != "sync" {
		t.Errorf("exec -s = %q, want sync", got)
	}

	// logs: the host wrote the container's output in CRI format.
	deadline := time.Now().Add(10 * time.Second)
	for {
		logs, err := n.try("logs", ctr)
		if err == nil && strings.Contains(logs, "hello from "+strings.TrimSpace(string(kver))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("crictl logs never showed the greeting: %q %v", logs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	raw, err := os.ReadFile(filepath.Join(n.logsDir, "hello.log"))
	if err != nil || !strings.Contains(string(raw), " stderr F oops\n") {
		t.Errorf("CRI log file: %q %v, want a stderr F line", raw, err)
	}

	// port-forward reaches a server inside the guest (busybox httpd on
	// the guest's loopback).
	n.crictlOK("exec", ctr, "sh", "-c", "mkdir -p /www && echo served-from-guest > /www/index.html && httpd -p 8080 -h /www")
	pf := exec.Command(n.crictl, "-r", "unix://"+filepath.Join(n.root, "run", "corral", "cri.sock"), "port-forward", pod, "0:8080")
	pfOut, _ := pf.StdoutPipe()
	pf.Stderr = pf.Stdout
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { pf.Process.Kill(); pf.Wait() }()
	sc := bufio.NewScanner(pfOut)
	var local string
	for sc.Scan() {
		if m := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`).FindStringSubmatch(sc.Text()); m != nil {
			local = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pfOut)
	if local == "" {
		t.Fatal("crictl port-forward printed no local port")
	}
	resp, err := http.Get("http://127.0.0.1:" + local + "/index.html")
	if err != nil {
		t.Fatalf("GET through port-forward: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "served-from-guest" {
		t.Errorf("GET through port-forward = %q", body)
	}

	n.crictlOK("stop", ctr)
	if st := n.crictlOK("inspect", "-o", "go-template", "--template", "{{.status.state}}", ctr); st != "CONTAINER_EXITED" {
		t.Errorf("after stop: state %s", st)
	}
	n.crictlOK("rm", ctr)
	n.crictlOK("stopp", pod)
	n.crictlOK("rmp", pod)
	if pids := qemuPIDs(n.root); len(pids) != 0 {
		t.Errorf("after rmp: qemu processes %v still run", pids)
	}
	for _, c := range []string{"memory", "pids"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, n.cgroup, "kubepods", pod)); err == nil {
			t.Errorf("after rmp: the pod's %s cgroup is still there", c)
		}
	}
	if out := n.crictlOK("pods", "-q"); out != "" {
		t.Errorf("after rmp: pods %q", out)
	}
}

// TestVMKilled: QEMU killed behind Corral's back → the pod is NotReady and
// its container exited with a reason; removal still cleans up.
func TestVMKilled(t *testing.T) {
	n := startNode(t)
	dir := t.TempDir()
	podCfg := writeJSON(t, dir, "pod.json", map[string]any{
		"metadata": map[string]string{"name": "doomed", "namespace": "default", "uid": "vm-e2e-2"},
		"linux":    map[string]any{},
	})
	ctrCfg := writeJSON(t, dir, "ctr.json", map[string]any{
		"metadata": map[string]string{"name": "c"},
		"image":    map[string]string{"image": "localhost/corral/busybox:latest"},
		"command":  []string{"sleep", "3600"},
		"linux":    map[string]any{},
	})
	pod := n.crictlOK("runp", "--runtime", "vm", podCfg)
	ctr := n.crictlOK("create", pod, ctrCfg, podCfg)
	n.crictlOK("start", ctr)
	pids := qemuPIDs(n.root)
	if len(pids) != 1 {
		t.Fatalf("qemu processes %v, want 1", pids)
	}
	var pid int
	fmt.Sscan(pids[0], &pid)
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := n.crictlOK("inspect", "-o", "go-template", "--template", "{{.status.state}} {{.status.reason}}", ctr)
		ps := n.crictlOK("inspectp", "-o", "go-template", "--template", "{{.status.state}}", pod)
		if st == "CONTAINER_EXITED VMExited" && ps == "SANDBOX_NOTREADY" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after killing qemu: container %q, pod %q", st, ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := n.try("exec", "-s", ctr, "true"); err == nil {
		t.Error("exec in a container of a dead VM succeeded")
	}
	n.crictlOK("rmp", "-f", pod)
	for _, c := range []string{"memory", "pids"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, n.cgroup, "kubepods", pod)); err == nil {
			t.Errorf("after rmp: the pod's %s cgroup is still there", c)
		}
	}
}
