// Package node runs a real Corral node for tests: it builds the three
// binaries once, starts `corral init` in a temp root with its own cgroup base,
// drives it with corralctl, and tears it down, leaving no process or cgroup
// behind. Integration and e2e suites share it so that they start Corral the
// same way production does.
package node

import (
	"bytes"
	"context"
	"errors"
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
)

// Build compiles corral, corral-agent and corralctl into a new directory
// under /var/tmp (not /tmp, which boot-time tmpfiles may empty) and returns
// it. The directory is world-readable so that tests may run corralctl as
// another user. The caller removes it.
func Build() (string, error) {
	dir, err := os.MkdirTemp("/var/tmp", "corral-test-bin-")
	if err != nil {
		return "", err
	}
	os.Chmod(dir, 0o755)
	for _, b := range []string{"corral", "corral-agent", "corralctl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "corral.io/corral/cmd/"+b)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("build %s: %w\n%s", b, err, out)
		}
	}
	return dir, nil
}

var seq atomic.Int64

// Options configure Start.
type Options struct {
	Units  map[string]string // unit files (or "x.service.d/y.conf" drop-ins) for the unit dir
	Files  map[string]string // other files, relative to the root (e.g. "etc/corral/corral.toml")
	Target string            // --default-target; "" keeps the agent's default
}

// Node is one running `corral init`.
type Node struct {
	T      testing.TB
	Bin    string // directory with the binaries
	Root   string
	Units  string // the --unit-dir
	Cgroup string // the --cgroup-root
	Cmd    *exec.Cmd
	Out    *Buffer // the supervisor's and the agent's log output
	exited chan struct{}
}

// Start writes the files and starts the supervisor, returning once the API
// answers. Cleanup stops it in order.
func Start(t testing.TB, bin string, opt Options) *Node {
	t.Helper()
	root := t.TempDir()
	n := &Node{T: t, Bin: bin, Root: root, Units: filepath.Join(root, "units"),
		Cgroup: fmt.Sprintf("corral-t-%d-%d", os.Getpid(), seq.Add(1)), Out: &Buffer{}, exited: make(chan struct{})}
	if err := os.MkdirAll(n.Units, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range opt.Units {
		n.Write(name, text)
	}
	for rel, text := range opt.Files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"init", "--root", root, "--unit-dir", n.Units, "--cgroup-root", n.Cgroup}
	if opt.Target != "" {
		args = append(args, "--default-target", opt.Target)
	}
	n.Cmd = exec.Command(filepath.Join(bin, "corral"), args...)
	n.Cmd.Stdout, n.Cmd.Stderr = n.Out, n.Out
	if err := n.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.Cmd.Wait(); close(n.exited) }()
	t.Cleanup(n.Stop)
	n.Eventually("API answers", func() error {
		_, err := n.Ctl("list-units")
		return err
	})
	return n
}

// Write puts a unit file (or drop-in) into the unit dir.
func (n *Node) Write(name, text string) {
	p := filepath.Join(n.Units, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.T.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.TrimLeft(text, "\n")), 0o644); err != nil {
		n.T.Fatal(err)
	}
}

// Stop shuts the supervisor down in order (SIGTERM) and removes the node's
// cgroups. The log is printed if the test failed.
func (n *Node) Stop() {
	select {
	case <-n.exited:
	default:
		n.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(60 * time.Second):
			n.Cmd.Process.Kill()
			<-n.exited
			n.T.Errorf("supervisor did not stop within 60s after SIGTERM")
		}
	}
	if n.T.Failed() {
		n.T.Logf("corral output:\n%s", n.Out.String())
	}
	for _, h := range []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"} {
		removeTree(filepath.Join("/sys/fs/cgroup", h, n.Cgroup))
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

// Ctl runs corralctl against the node; err carries the exit status and output.
func (n *Node) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(n.Bin, "corralctl"), append([]string{"--root", n.Root}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("corralctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Must runs corralctl and fails the test on a non-zero exit.
func (n *Node) Must(args ...string) string {
	n.T.Helper()
	out, err := n.Ctl(args...)
	if err != nil {
		n.T.Fatal(err)
	}
	return out
}

// Code runs corralctl and returns its exit code.
func (n *Node) Code(args ...string) int {
	_, err := n.Ctl(args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		n.T.Fatal(err)
	}
	return 0
}

// State is `corralctl is-active` for one unit, whatever its exit code.
func (n *Node) State(unit string) string {
	out, _ := n.Ctl("is-active", unit)
	return strings.TrimSpace(out)
}

// Prop returns one property from `corralctl show`.
func (n *Node) Prop(unit, key string) string {
	n.T.Helper()
	out := n.Must("show", "-p", key, unit)
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// Eventually polls f until it succeeds; the deadline only prevents hangs.
func (n *Node) Eventually(what string, f func() error) {
	n.T.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.T.Fatalf("%s: still failing after 30s: %v", what, err)
}

// CgroupFile reads a file of a cgroup under the node's base in one v1
// hierarchy.
func (n *Node) CgroupFile(controller, path, file string) string {
	n.T.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, n.Cgroup, path, file))
	if err != nil {
		n.T.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Buffer is a goroutine-safe bytes.Buffer for process output.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
