//go:build integration

package chaos

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"corral.io/corral/test/node"
)

// A socket unit's listening fd dies with the core; the next core listens
// again, so socket activation keeps working across kill -9 of the core.
func TestSocketUnitListensAgainAfterCoreKill(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "greet.sock")
	script := filepath.Join(dir, "greet.py")
	if err := os.WriteFile(script, []byte(`
import os, socket
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.sendall(b"hello\n")
    c.close()
`), 0o644); err != nil {
		t.Fatal(err)
	}
	n := node.Start(t, bin, node.Options{Units: map[string]string{
		"greet.socket":  fmt.Sprintf("[Socket]\nListenStream=%s\n", sock),
		"greet.service": "[Service]\nExecStart=/usr/bin/python3 " + script + "\n",
	}})
	n.Must("start", "greet.socket")
	old := agentPID(n)
	if old == 0 {
		t.Fatal("no core")
	}
	syscall.Kill(old, syscall.SIGKILL)
	n.Eventually("a new core answers", func() error {
		if p := agentPID(n); p == 0 || p == old {
			return fmt.Errorf("core not restarted yet")
		}
		_, err := n.Ctl("list-units")
		return err
	})
	n.Eventually("greet.socket listening again", func() error {
		if st := n.State("greet.socket"); st != "active" {
			return fmt.Errorf("greet.socket is %s", st)
		}
		return nil
	})
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "hello" {
		t.Fatalf("activation after the core's restart: %q, %v", line, err)
	}
}
