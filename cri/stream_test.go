package cri

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestExecThroughStreamingServer runs an exec the way kubelet's client
// does over WebSocket (channel protocol v4): the URL comes from Corral's
// streaming server, and the fake backend sees its own container ID.
func TestExecThroughStreamingServer(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "", nil)
	ctr := e.createContainer(pod, "c", e.native)
	resp, err := e.rt.Exec(ctx(t), &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"echo", "hi"}, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil || u.Host != e.srv.StreamAddr() || !strings.HasPrefix(u.Path, "/exec/") {
		t.Fatalf("exec URL %q (streaming server on %s): %v", resp.Url, e.srv.StreamAddr(), err)
	}
	u.Scheme = "ws"
	d := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}, HandshakeTimeout: 10 * time.Second}
	conn, _, err := d.Dial(u.String(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))

	var out bytes.Buffer
	read := func(want string) {
		t.Helper()
		for !strings.Contains(out.String(), want) {
			_, frame, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read (have %q, want %q): %v", out.String(), want, err)
			}
			if len(frame) > 0 && frame[0] == 1 { // stdout
				out.Write(frame[1:])
			}
		}
	}
	read(e.native.BackendID(ctr) + ": echo hi\n")
	if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{0}, "ping\n"...)); err != nil {
		t.Fatal(err)
	}
	read("ping\n")

	// A token is good for one connection only.
	r, err := http.Get(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("second use of the URL: %s", r.Status)
	}
}

func TestAttachAndPortForwardURLs(t *testing.T) {
	e := newTestService(t)
	pod := e.runPod("a", "", nil)
	ctr := e.createContainer(pod, "c", e.native)
	a, err := e.rt.Attach(ctx(t), &runtimeapi.AttachRequest{ContainerId: ctr, Stdout: true})
	if err != nil || !strings.Contains(a.Url, e.srv.StreamAddr()+"/attach/") {
		t.Fatalf("Attach = %v, %v", a, err)
	}
	p, err := e.rt.PortForward(ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{80}})
	if err != nil || !strings.Contains(p.Url, e.srv.StreamAddr()+"/portforward/") {
		t.Fatalf("PortForward = %v, %v", p, err)
	}
}
