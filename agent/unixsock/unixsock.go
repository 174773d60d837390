// Package unixsock creates the agent's listening unix sockets (api.sock,
// cri.sock) the same way: parent directory created, a stale socket left by a
// crashed agent replaced, a live one refused so that two agents never steal
// each other's socket, and the mode set before anyone can connect.
package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Listen listens on path with the given mode.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir for %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: already in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket %s: removing the stale one: %w", path, err)
		}
	}
	// The socket exists with the umask's mode until the chmod below; the
	// directory (0755, root's) and SO_PEERCRED checks cover that moment.
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("socket %s: chmod: %w", path, err)
	}
	return l, nil
}
