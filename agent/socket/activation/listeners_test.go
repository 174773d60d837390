package activation

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
)

// TestListeners passes a real listening socket and a pipe: the socket becomes
// a working net.Listener in the child, the pipe a nil entry.
func TestListeners(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ACTIVATION_HELPER=listeners", "LISTEN_FDS=2", "GORACE=atexit_sleep_ms=0")
	cmd.ExtraFiles = []*os.File{lf, r}
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = cmd.CombinedOutput()
		done <- err
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	c.Close()
	if err := <-done; err != nil || string(buf[:n]) != "served" {
		t.Fatalf("answer %q, child %v:\n%s", buf[:n], err, out)
	}
}

// listenersChild is the child side of TestListeners.
func listenersChild() int {
	os.Setenv("LISTEN_PID", fmt.Sprint(os.Getpid()))
	lns, err := Listeners(true)
	if err != nil || len(lns) != 2 || lns[0] == nil || lns[1] != nil {
		fmt.Printf("Listeners = %v, %v; want [listener nil]\n", lns, err)
		return 1
	}
	c, err := lns[0].Accept()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	c.Write([]byte("served"))
	c.Close()
	lns[0].Close()
	return 0
}
