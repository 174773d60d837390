//go:build e2e

// Package e2e drives Corral's CRI socket with the real clients that talk to
// it in production and in conformance runs: crictl, critest and kubelet
// (built and cached by hack/tools), plus a Go CRI client for bad input. Every
// test starts its own `corral init` in a temp root with a unique cgroup root,
// so nothing is shared between tests or with the host.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kubetest "corral.io/corral/test/kubelet"
)

var (
	bin      string // corral, corral-agent and corralctl built by TestMain
	repoRoot string
	seq      atomic.Int64
)

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repoRoot = filepath.Join(wd, "..", "..")
	if b := os.Getenv("E2E_BIN"); b != "" {
		// Prebuilt binaries (e.g. of another tree, to try a fix).
		bin = b
		os.Exit(m.Run())
	}
	// Not /tmp: other tests on these machines have been seen to empty it.
	dir, err := os.MkdirTemp("/var/tmp", "corral-e2e-bin-")
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
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var tools sync.Map // name -> path

// tool returns the path printed by hack/tools/<name>.sh, which builds and
// caches the tool when it is missing (so a fresh machine works, slowly).
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, ok := tools.Load(name); ok {
		return p.(string)
	}
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "tools", name+".sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/tools/%s.sh: %v\n%s", name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := lines[len(lines)-1]
	tools.Store(name, p)
	return p
}

// scratch makes a temp dir under /var/tmp (0755: unprivileged pod processes
// and kubelet's checks must be able to traverse it), removed at the end.
func scratch(t *testing.T, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "corral-e2e-"+prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() {
		kubetest.UnmountUnder(d)
		os.RemoveAll(d)
	})
	return d
}

// node is one running `corral init` with its CRI socket.
type node struct {
	t      *testing.T
	root   string
	cgroup string
	sock   string // unix path of cri.sock
	cmd    *exec.Cmd
	out    *syncBuffer
	// hostname is the machine's, which the node's UTS namespace starts with.
	hostname string
	exited   chan struct{}
}

// startNode writes <root>/etc/corral/corral.toml (when config is not empty)
// and starts the supervisor, returning once the CRI socket answers.
func startNode(t *testing.T, config string) *node {
	t.Helper()
	return startNodeWith(t, nodeOptions{config: config})
}

type nodeOptions struct {
	config string
	// ownMountNS runs the supervisor (and so every native container) in a
	// mount namespace of the test's own, made rshared. Clients that must
	// see the same mounts run through node.inNS.
	ownMountNS bool
	// hostTools (with ownMountNS) are commands (name → binary) put first
	// in every container's PATH: a tmpfs on /usr/local/sbin (empty on
	// Debian, first in the default PATH) holds links to them, in the
	// node's mount namespace only.
	hostTools map[string]string
}

func startNodeWith(t *testing.T, o nodeOptions) *node {
	t.Helper()
	config := o.config
	root := scratch(t, "root")
	n := &node{t: t, root: root, cgroup: fmt.Sprintf("corral-e2e-%d-%d", os.Getpid(), seq.Add(1)),
		sock: filepath.Join(root, "run", "corral", "cri.sock"), out: &syncBuffer{}, exited: make(chan struct{})}
	if config != "" {
		p := filepath.Join(root, "etc", "corral", "corral.toml")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	argv := []string{filepath.Join(bin, "corral"), "init", "--root", root, "--cgroup-root", n.cgroup, "--default-target", ""}
	// Every node gets a UTS namespace of its own: a native pod that sets
	// its hostname in the wrong namespace must not rename the machine (it
	// did). stop() checks the node's hostname is still the host's.
	script := ""
	flags := []string{"--uts"}
	if o.ownMountNS {
		// unshare copies the host's mounts into a new namespace, private
		// (the host's / is private here); making it rshared there does not
		// touch the host's.
		flags = append(flags, "--mount", "--propagation", "unchanged")
		script += "mount --make-rshared /\n"
		if len(o.hostTools) > 0 {
			script += "mount -t tmpfs -o mode=0755 e2e-tools /usr/local/sbin\n"
			for name, path := range o.hostTools {
				script += fmt.Sprintf("ln -s %q /usr/local/sbin/%q\n", path, name)
			}
		}
	}
	// exec keeps the supervisor's PID = our child's.
	script = "set -e\n" + script + `exec "$@"`
	argv = append(append(append([]string{"unshare"}, flags...), "--", "/bin/sh", "-c", script, "sh"), argv...)
	n.hostname, _ = os.Hostname()
	n.cmd = exec.Command(argv[0], argv[1:]...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(n.stop)
	eventually(t, "CRI socket answers", 30*time.Second, func() error {
		select {
		case <-n.exited:
			t.Fatalf("corral init exited:\n%s", n.out.String())
		default:
		}
		_, err := n.crictl(5*time.Second, "version")
		return err
	})
	return n
}

// inNS wraps a command so it runs in the supervisor's mount namespace
// (for nodes started with ownMountNS).
func (n *node) inNS(argv ...string) []string {
	return append([]string{"nsenter", "--mount=/proc/" + fmt.Sprint(n.cmd.Process.Pid) + "/ns/mnt", "--"}, argv...)
}

// stop shuts the supervisor down in order and removes our cgroups.
func (n *node) stop() {
	select {
	case <-n.exited:
	default:
		if out, err := exec.Command("nsenter", "--uts=/proc/"+fmt.Sprint(n.cmd.Process.Pid)+"/ns/uts", "hostname").Output(); err == nil &&
			strings.TrimSpace(string(out)) != n.hostname {
			n.t.Errorf("a pod changed the node's hostname to %q (the host's is %q): pods must set it in their own UTS namespace only",
				strings.TrimSpace(string(out)), n.hostname)
		}
		// Remove what a failed test left behind through the CRI first, with
		// short stop timeouts: at shutdown the agent gives each unit its
		// TimeoutStopSec (90 s), and a container that is PID 1 of its PID
		// namespace ignores SIGTERM.
		if out, err := n.crictl(10*time.Second, "ps", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				n.crictl(10*time.Second, "stop", "--timeout", "1", id)
			}
		}
		n.crictl(30*time.Second, "rmp", "-f", "-a")
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(150 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
			n.t.Errorf("supervisor did not stop within 150s after SIGTERM")
		}
	}
	if n.t.Failed() {
		n.t.Logf("supervisor output:\n%s", n.out.String())
	}
	for _, h := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"} {
		removeTree(filepath.Join("/sys/fs/cgroup", h, n.cgroup))
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

// crictl runs the real crictl against the node's socket.
func (n *node) crictl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	ep := "unix://" + n.sock
	full := append([]string{"--config", "/dev/null", "-r", ep, "-i", ep, "-t", timeout.String()}, args...)
	cmd := exec.CommandContext(ctx, tool(n.t, "crictl"), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// must runs crictl and fails the test on error; it returns trimmed stdout.
func (n *node) must(args ...string) string {
	n.t.Helper()
	out, err := n.crictl(30*time.Second, args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// ctl runs corralctl against the node.
func (n *node) ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "corralctl"), append([]string{"--root", n.root}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("corralctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// eventually polls f until it succeeds; the deadline only prevents hangs.
func eventually(t *testing.T, what string, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, limit, err)
}

// writeJSON writes a crictl config file (pod or container) into dir.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
