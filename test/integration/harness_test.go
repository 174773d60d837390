//go:build integration

// Package integration drives the real supervisor, agent and corralctl
// binaries in a temp root with real processes and cgroups.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"corral.io/corral/test/node"
)

// bin holds corral, corral-agent and corralctl, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	var err error
	if bin, err = node.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(bin)
	os.Exit(code)
}

// start runs a node with these unit files.
func start(t *testing.T, units map[string]string) *node.Node {
	t.Helper()
	return node.Start(t, bin, node.Options{Units: units})
}

// commandAs runs a command as another uid (for permission tests).
func commandAs(uid uint32, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	return cmd
}
