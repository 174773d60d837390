//go:build e2e

// Package containers runs container pods through Corral's CRI socket: a
// real containerd 2.4.2 + runc 1.5.3, started as a Corral unit from
// deploy/units/containerd.service's shape and deploy/containerd/config.toml
// (paths rewritten into a temp dir), fed by the offline image registry of
// test/tools/imgreg, and driven with crictl, critest and a Go CRI client.
// Tools come from hack/tools (built and cached on first use).
package containers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	bin      string // corral, corral-agent and corralctl built by TestMain
	repoRoot string
	seq      atomic.Int64
	registry struct {
		once  sync.Once
		certs string // certs.d with mirror files for every public registry
		addr  string // host:port it serves on
		err   error
	}
)

func TestMain(m *testing.M) {
	wd, _ := os.Getwd()
	repoRoot = filepath.Join(wd, "..", "..")
	// Not /tmp: other tests on these machines have been seen to empty it.
	dir, err := os.MkdirTemp("/var/tmp", "corral-ctr-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
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
	stopRegistry()
	os.RemoveAll(dir)
	os.Exit(code)
}

var tools sync.Map // name -> path

// tool returns the path printed by hack/tools/<name>.sh, which builds and
// caches the tool when it is missing: a fresh machine works, slowly.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	key := name + " " + strings.Join(args, " ")
	if p, ok := tools.Load(key); ok {
		return p.(string)
	}
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "tools", name+".sh"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/tools/%s.sh: %v\n%s", name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := lines[len(lines)-1]
	if len(args) == 0 {
		tools.Store(key, p)
	}
	return p
}

var regCmd *exec.Cmd

// certsDir starts the offline image registry once for the package and
// returns its certs.d (hosts.toml mirrors for registry.k8s.io, docker.io, ...).
func certsDir(t *testing.T) string {
	t.Helper()
	imgreg := tool(t, "images")
	registry.once.Do(func() {
		dir, err := os.MkdirTemp("/var/tmp", "corral-ctr-reg-")
		if err != nil {
			registry.err = err
			return
		}
		os.Chmod(dir, 0o755)
		addr := filepath.Join(dir, "addr")
		regCmd = exec.Command(imgreg, "-addr", "127.0.0.1:0", "-certs-dir", filepath.Join(dir, "certs.d"), "-addr-file", addr)
		log, _ := os.Create(filepath.Join(dir, "imgreg.log"))
		regCmd.Stdout, regCmd.Stderr = log, log
		if registry.err = regCmd.Start(); registry.err != nil {
			return
		}
		for i := 0; i < 1200; i++ {
			if b, err := os.ReadFile(addr); err == nil && len(b) > 0 {
				registry.certs = filepath.Join(dir, "certs.d")
				registry.addr = strings.TrimSpace(string(b))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		out, _ := os.ReadFile(filepath.Join(dir, "imgreg.log"))
		registry.err = fmt.Errorf("image registry did not come up in 60s:\n%s", out)
	})
	if registry.err != nil {
		t.Fatal(registry.err)
	}
	return registry.certs
}

func stopRegistry() {
	if regCmd != nil && regCmd.Process != nil {
		regCmd.Process.Kill()
		regCmd.Wait()
		os.RemoveAll(filepath.Dir(registry.certs))
	}
}

// node is one `corral init` in its own temp root whose containerd.service
// unit runs a private containerd. Everything containerd owns lives in ctd.
type node struct {
	t        *testing.T
	root     string // corral --root
	units    string // --unit-dir
	cgroup   string // --cgroup-root
	ctd      string // containerd's root, state, sockets, CNI config
	sock     string // containerd's socket
	bin      string // containerd, shim, ctr, runc
	cmd      *exec.Cmd
	out      *syncBuffer
	exited   chan struct{}
	crictlCf string
}

// defaultHandlers is corral.toml; @SOCK@ is containerd's socket. The default handler is runc: images pulled without a handler go
// to containerd, as on a container node.
const defaultHandlers = `
[cri]
default_handler = "runc"

[handlers.native]
backend = "native"

[handlers.runc]
backend = "containerd"
address = "@SOCK@"
`

// start brings up containerd as a unit under a fresh corral and waits until
// Corral's CRI reports the runc handler ready. extra is appended to
// corral.toml (more handlers; @SOCK@ is containerd's socket).
func start(t *testing.T, extra string) *node {
	t.Helper()
	certs := certsDir(t)
	n := &node{t: t, out: &syncBuffer{}, exited: make(chan struct{}),
		cgroup: fmt.Sprintf("corral-ctr-%d-%d", os.Getpid(), seq.Add(1))}
	var err error
	// 0755 and under /var/tmp: user-namespaced containers run as an
	// unprivileged host uid and must traverse the path to their rootfs.
	if n.root, err = os.MkdirTemp("/var/tmp", "corral-ctr-"); err != nil {
		t.Fatal(err)
	}
	os.Chmod(n.root, 0o755)
	n.units = filepath.Join(n.root, "units")
	n.ctd = filepath.Join(n.root, "ctd")
	n.sock = filepath.Join(n.ctd, "state", "containerd.sock")
	t.Cleanup(n.cleanup)

	n.bin = tool(t, "containerd")
	// containerd-config.sh gives a CNI network of our own (bridge and
	// subnet derived from the dir); the config itself is deploy's template.
	tool(t, "containerd-config", n.ctd, certs)
	n.writeFile(filepath.Join(n.ctd, "containerd.toml"), n.renderConfig(certs))
	n.writeFile(filepath.Join(n.units, "containerd.service"), n.renderUnit())
	n.writeFile(filepath.Join(n.root, "etc", "corral", "corral.toml"), strings.ReplaceAll(defaultHandlers+extra, "@SOCK@", n.sock))
	n.crictlCf = filepath.Join(n.root, "crictl.yaml")
	n.writeFile(n.crictlCf, fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%[1]s\ntimeout: 60\n", n.criSock()))

	// A UTS namespace of its own (unshare execs corral, so the PID is
	// corral's): a host-network pod that sets its hostname must not rename
	// the machine.
	n.cmd = exec.Command("unshare", "--uts", "--", filepath.Join(bin, "corral"), "init", "--root", n.root, "--unit-dir", n.units, "--cgroup-root", n.cgroup)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	n.eventually("API answers", 30*time.Second, func() error { _, err := n.ctl("list-units"); return err })
	n.must("start", "containerd.service")
	n.eventually("runc handler ready", 60*time.Second, func() error { return n.handlerReady("runc", true) })
	return n
}

// renderConfig is deploy/containerd/config.toml with its standard paths
// moved into n.ctd, so that the shipped file is what the test runs.
func (n *node) renderConfig(certs string) string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "containerd", "config.toml"))
	if err != nil {
		n.t.Fatal(err)
	}
	r := strings.NewReplacer(
		"/var/lib/containerd", filepath.Join(n.ctd, "root"),
		"/run/containerd", filepath.Join(n.ctd, "state"),
		"/etc/containerd/certs.d", certs,
		"/etc/cni/net.d", filepath.Join(n.ctd, "cni", "net.d"),
		"/usr/local/sbin/runc", filepath.Join(n.bin, "runc"),
		"/var/run/nri/nri.sock", filepath.Join(n.ctd, "nri.sock"),
		"/opt/containerd", filepath.Join(n.ctd, "opt"),
	)
	return r.Replace(string(b))
}

// renderUnit is deploy/units/containerd.service pointing at the cached
// binaries and the rendered config, with a shorter RestartSec.
func (n *node) renderUnit() string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "units", "containerd.service"))
	if err != nil {
		n.t.Fatal(err)
	}
	s := strings.NewReplacer(
		"ExecStartPre=-/sbin/modprobe overlay\n", "",
		"/usr/local/bin/containerd --config /etc/containerd/config.toml",
		filepath.Join(n.bin, "containerd")+" --config "+filepath.Join(n.ctd, "containerd.toml"),
		"RestartSec=2", "RestartSec=1",
	).Replace(string(b))
	// The shim and runc are found on PATH.
	return strings.Replace(s, "[Service]\n", "[Service]\nEnvironment=PATH="+n.bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", 1)
}

func (n *node) criSock() string { return filepath.Join(n.root, "run", "corral", "cri.sock") }

func (n *node) writeFile(p, text string) {
	n.t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// ctl runs corralctl against the node.
func (n *node) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "corralctl"), append([]string{"--root", n.root}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("corralctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (n *node) must(args ...string) string {
	n.t.Helper()
	out, err := n.ctl(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// prop is one property from `corralctl show`.
func (n *node) prop(unit, key string) string {
	n.t.Helper()
	for _, l := range strings.Split(n.must("show", "-p", key, unit), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// crictl runs crictl against Corral's socket, or against endpoint when the
// first argument is "@<socket>".
func (n *node) crictl(args ...string) (string, error) {
	cfg := []string{"--config", n.crictlCf}
	if len(args) > 0 && strings.HasPrefix(args[0], "@") {
		ep := "unix://" + args[0][1:]
		cfg, args = []string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "60s"}, args[1:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(n.t, "crictl"), append(cfg, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("crictl %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func (n *node) crictlMust(args ...string) string {
	n.t.Helper()
	out, err := n.crictl(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// cri is a Go client on Corral's socket, for what crictl cannot show
// quickly enough (Status polled during a containerd restart).
func (n *node) cri() runtimeapi.RuntimeServiceClient {
	n.t.Helper()
	c, err := grpc.NewClient("unix://"+n.criSock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return runtimeapi.NewRuntimeServiceClient(c)
}

// handlerReady checks Corral's per-handler condition.
func (n *node) handlerReady(h string, want bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := grpc.NewClient("unix://"+n.criSock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := runtimeapi.NewRuntimeServiceClient(c).Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return err
	}
	return checkCondition(st, "corral.io/handler/"+h, want)
}

func checkCondition(st *runtimeapi.StatusResponse, typ string, want bool) error {
	for _, c := range st.GetStatus().GetConditions() {
		if c.GetType() == typ {
			if c.GetStatus() != want {
				return fmt.Errorf("%s=%v (%s: %s), want %v", typ, c.GetStatus(), c.GetReason(), c.GetMessage(), want)
			}
			return nil
		}
	}
	return fmt.Errorf("no condition %s in %v", typ, st.GetStatus().GetConditions())
}

// eventually polls f; the deadline only prevents a hang.
func (n *node) eventually(what string, d time.Duration, f func() error) {
	n.t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("%s: still failing after %s: %v", what, d, err)
}

// cleanup removes every pod (Corral's and any made on containerd directly),
// stops corral, then removes what containerd leaves: shims serving this
// socket (found by their command line, so only ours), mounts, the CNI
// bridge, cgroups and the temp root.
func (n *node) cleanup() {
	if n.cmd != nil && n.cmd.Process != nil {
		if _, err := os.Stat(n.sock); err == nil {
			n.crictl("rmp", "-fa")
			n.crictl("@"+n.sock, "rmp", "-fa")
		}
		select {
		case <-n.exited:
		default:
			n.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.exited:
			case <-time.After(60 * time.Second):
				n.cmd.Process.Kill()
				<-n.exited
				n.t.Errorf("corral did not stop within 60s of SIGTERM")
			}
		}
		if n.t.Failed() {
			n.t.Logf("corral output:\n%s", n.out.String())
			if b, err := os.ReadFile(filepath.Join(n.root, "var", "log", "corral", "containerd.service", "current")); err == nil {
				n.t.Logf("containerd log (tail):\n%s", tail(string(b), 60))
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && n.ctd != "" && bytes.Contains(b, []byte(n.ctd+"/")) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		var ours []string
		for _, l := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], n.root+"/") {
				ours = append(ours, f[1])
			}
		}
		for i := len(ours) - 1; i >= 0; i-- {
			syscall.Unmount(ours[i], syscall.MNT_DETACH)
		}
	}
	if b, err := os.ReadFile(filepath.Join(n.ctd, "cni", "bridge")); err == nil {
		exec.Command("ip", "link", "del", strings.TrimSpace(string(b))).Run()
	}
	for _, h := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"} {
		removeTree(filepath.Join("/sys/fs/cgroup", h, n.cgroup))
	}
	if n.root != "" {
		os.RemoveAll(n.root)
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

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
