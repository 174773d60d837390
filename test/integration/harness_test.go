//go:build integration

// Package integration drives the real supervisor, agent and corralctl
// binaries in a temp root with real processes and cgroups.
package integration

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

// bin holds corral, corral-agent and corralctl, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "corral-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // other uids run corralctl in permission tests
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

var seq atomic.Int64

// node is one running `corral init` in its own temp root and cgroup base.
type node struct {
	t      *testing.T
	root   string
	units  string
	cgroup string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// start writes the unit files and starts the supervisor, returning once the
// API answers.
func start(t *testing.T, units map[string]string) *node {
	t.Helper()
	root := t.TempDir()
	n := &node{t: t, root: root, units: filepath.Join(root, "units"),
		cgroup: fmt.Sprintf("corral-it-%d-%d", os.Getpid(), seq.Add(1)), out: &syncBuffer{}, exited: make(chan struct{})}
	if err := os.MkdirAll(n.units, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range units {
		n.write(name, text)
	}
	n.cmd = exec.Command(filepath.Join(bin, "corral"), "init", "--root", root, "--unit-dir", n.units, "--cgroup-root", n.cgroup)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(n.stop)
	n.eventually("API answers", func() error {
		_, err := n.ctl("list-units")
		return err
	})
	return n
}

// write puts a unit file (or drop-in: "foo.service.d/x.conf") in the unit dir.
func (n *node) write(name, text string) {
	p := filepath.Join(n.units, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.TrimLeft(text, "\n")), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// stop shuts the supervisor down in order and checks nothing is left.
func (n *node) stop() {
	select {
	case <-n.exited:
	default:
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(60 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
			n.t.Errorf("supervisor did not stop within 60s after SIGTERM")
		}
	}
	if n.t.Failed() {
		n.t.Logf("supervisor output:\n%s", n.out.String())
	}
	// Remove our cgroups (bottom-up) so nothing leaks between runs.
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

// ctl runs corralctl against the node; err carries the exit code and output.
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

// must runs corralctl and fails the test on a non-zero exit.
func (n *node) must(args ...string) string {
	n.t.Helper()
	out, err := n.ctl(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// code runs corralctl and returns its exit code.
func (n *node) code(args ...string) int {
	_, err := n.ctl(args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		n.t.Fatal(err)
	}
	return 0
}

// prop returns one property from `corralctl show`.
func (n *node) prop(unit, key string) string {
	n.t.Helper()
	out := n.must("show", "-p", key, unit)
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// eventually polls f until it succeeds; the deadline only prevents hangs.
func (n *node) eventually(what string, f func() error) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.t.Fatalf("%s: still failing after 30s: %v", what, err)
}

// cgroupFile reads a file of a unit's cgroup in one v1 hierarchy.
func (n *node) cgroupFile(controller, unitPath, file string) string {
	n.t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, n.cgroup, unitPath, file))
	if err != nil {
		n.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
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

// commandAs runs a command as another uid (for permission tests).
func commandAs(uid uint32, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return cmd
}
