//go:build e2e

package containers

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const busybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// podJSON is a crictl pod config; handler goes into the corral.io/runtime
// annotation only when routing by annotation is wanted.
func (n *node) podJSON(name string, hostNet bool) string {
	n.t.Helper()
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "ctr-e2e", "uid": name + "-uid"},
		"log_directory": filepath.Join(n.root, "podlogs", name),
	}
	if hostNet {
		cfg["linux"] = map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}}
	}
	return n.jsonFile(name+"-pod.json", cfg)
}

func (n *node) ctrJSON(name, image string, args ...string) string {
	n.t.Helper()
	return n.jsonFile(name+"-ctr.json", map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": image},
		"command":  args,
		"log_path": name + ".log",
	})
}

func (n *node) jsonFile(name string, v any) string {
	n.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		n.t.Fatal(err)
	}
	p := filepath.Join(n.root, "cfg", name)
	n.writeFile(p, string(b))
	return p
}

// runContainer makes a pod on handler with one started container and
// returns both IDs.
func (n *node) runContainer(name, handler, image string, args ...string) (pod, ctr string) {
	n.t.Helper()
	podCfg := n.podJSON(name, handler == "native")
	pod = n.crictlMust("runp", "--runtime", handler, podCfg)
	ctr = n.crictlMust("create", pod, n.ctrJSON(name, image, args...), podCfg)
	n.crictlMust("start", ctr)
	return pod, ctr
}

// (a) The whole life of a container pod through Corral's socket.
func TestContainerLifecycleThroughCorral(t *testing.T) {
	n := start(t, "")
	podCfg := n.podJSON("life", false)
	n.crictlMust("pull", "--pod-config", podCfg, busybox)
	if imgs := n.crictlMust("images", "-q"); imgs == "" {
		t.Fatalf("no images listed after a pull")
	}
	pod := n.crictlMust("runp", "--runtime", "runc", podCfg)
	ctr := n.crictlMust("create", pod, n.ctrJSON("life", busybox, "sh", "-c", "echo hello from busybox; exec sleep 3600"), podCfg)
	n.crictlMust("start", ctr)
	n.eventually("container running", 30*time.Second, func() error { return n.state(ctr, "CONTAINER_RUNNING") })

	if out := n.crictlMust("exec", ctr, "echo", "exec works"); out != "exec works" {
		t.Errorf("exec output %q", out)
	}
	if out, err := n.crictl("exec", ctr, "sh", "-c", "exit 3"); err == nil {
		t.Errorf("exec of a failing command succeeded: %s", out)
	}
	n.eventually("logs", 10*time.Second, func() error {
		out, err := n.crictl("logs", ctr)
		if err == nil && !strings.Contains(out, "hello from busybox") {
			return errorf("logs %q", out)
		}
		return err
	})
	// containerd has exactly this one pod (Corral's ID is containerd's own
	// once the CRI server keeps remote IDs; until then it is a fresh one).
	if direct := strings.Fields(n.crictlMust("@"+n.sock, "pods", "-q")); len(direct) != 1 {
		t.Errorf("containerd's pods %q, want exactly one", direct)
	}
	var insp struct {
		Status struct {
			RuntimeHandler string `json:"runtimeHandler"`
		} `json:"status"`
	}
	json.Unmarshal([]byte(n.crictlMust("inspectp", pod)), &insp)
	if insp.Status.RuntimeHandler != "runc" {
		t.Errorf("pod runtime handler %q, want runc", insp.Status.RuntimeHandler)
	}

	n.crictlMust("stop", ctr)
	n.eventually("container exited", 30*time.Second, func() error { return n.state(ctr, "CONTAINER_EXITED") })
	n.crictlMust("rm", ctr)
	n.crictlMust("stopp", pod)
	n.crictlMust("rmp", pod)
	if out := n.crictlMust("pods", "-q"); out != "" {
		t.Errorf("pods left through Corral: %q", out)
	}
	if out := n.crictlMust("@"+n.sock, "pods", "-q"); out != "" {
		t.Errorf("pods left in containerd: %q", out)
	}
}

// state checks one container's state in crictl ps -a.
func (n *node) state(ctr, want string) error {
	out, err := n.crictl("inspect", "-o", "go-template", "--template", "{{.status.state}}", ctr)
	if err != nil {
		return err
	}
	if out != want {
		return errorf("container %s is %s, want %s", ctr, out, want)
	}
	return nil
}

// (b) A native pod and a container pod on the same socket, listed together.
func TestNativeAndContainerPodsSideBySide(t *testing.T) {
	n := start(t, "")
	n.crictlMust("pull", busybox)
	npod, nctr := n.runContainer("native", "native", "localhost/corral/host:latest", "/bin/sleep", "3600")
	cpod, cctr := n.runContainer("boxed", "runc", busybox, "sleep", "3600")

	pods := n.crictlMust("pods", "-q")
	for _, id := range []string{npod, cpod} {
		if !strings.Contains(pods, id) {
			t.Errorf("crictl pods %q lacks %s", pods, id)
		}
	}
	n.eventually("both containers running", 30*time.Second, func() error {
		ps := n.crictlMust("ps", "-q", "--state", "Running")
		for _, id := range []string{nctr, cctr} {
			if !strings.Contains(ps, id) {
				return errorf("crictl ps %q lacks %s", ps, id)
			}
		}
		return nil
	})
	var list struct {
		Items []struct {
			ID             string `json:"id"`
			RuntimeHandler string `json:"runtimeHandler"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(n.crictlMust("pods", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range list.Items {
		got[p.ID] = p.RuntimeHandler
	}
	if got[npod] != "native" || got[cpod] != "runc" {
		t.Errorf("handlers by pod = %v, want %s native and %s runc", got, npod, cpod)
	}
	// Filtering by pod narrows to one backend.
	if ps := n.crictlMust("ps", "-q", "-p", cpod); ps != cctr {
		t.Errorf("ps -p %s = %q, want %s", cpod, ps, cctr)
	}
	// Images merge: containerd's busybox and the native host image.
	imgs := n.crictlMust("images")
	for _, want := range []string{"e2e-test-images/busybox", "localhost/corral/host"} {
		if !strings.Contains(imgs, want) {
			t.Errorf("crictl images lacks %s:\n%s", want, imgs)
		}
	}
	n.crictlMust("rmp", "-f", npod, cpod)
}

// (c) containerd killed by PID while a container pod runs: Corral reports
// the handler not ready, its unit restarts containerd, and the pod, the
// container and Corral's ID maps are all still there.
func TestContainerdKilledAndRestartedByCorral(t *testing.T) {
	n := start(t, "")
	n.crictlMust("pull", busybox)
	npod, _ := n.runContainer("native", "native", "localhost/corral/host:latest", "/bin/sleep", "3600")
	cpod, cctr := n.runContainer("survivor", "runc", busybox, "sleep", "3600")
	n.eventually("container running", 30*time.Second, func() error { return n.state(cctr, "CONTAINER_RUNNING") })

	pid := n.prop("containerd.service", "MainPID")
	restarts := n.prop("containerd.service", "NRestarts")
	p := atoi(t, pid)
	if p <= 0 {
		t.Fatalf("containerd MainPID %q", pid)
	}
	// Watch Corral's Status from before the kill, so the short down time is
	// not missed.
	cri := n.cri()
	sawDown := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			cctx, c := context.WithTimeout(ctx, 3*time.Second)
			st, err := cri.Status(cctx, &runtimeapi.StatusRequest{})
			c()
			if err == nil && checkCondition(st, "corral.io/handler/runc", false) == nil {
				for _, c := range st.GetStatus().GetConditions() {
					if c.GetType() == "corral.io/handler/runc" {
						sawDown <- c.GetReason() + ": " + c.GetMessage()
					}
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case why := <-sawDown:
		t.Logf("runc handler not ready while containerd was down: %s", why)
	case <-time.After(30 * time.Second):
		t.Fatal("Corral's Status never showed the runc handler not ready after containerd was killed")
	}
	// The native handler is unaffected.
	if err := n.handlerReady("native", true); err != nil {
		t.Error(err)
	}
	n.eventually("containerd restarted by its unit", 60*time.Second, func() error {
		if np := n.prop("containerd.service", "MainPID"); np == pid || np == "0" || np == "" {
			return errorf("MainPID still %s", np)
		}
		return n.handlerReady("runc", true)
	})
	if r := n.prop("containerd.service", "NRestarts"); atoi(t, r) != atoi(t, restarts)+1 {
		t.Errorf("NRestarts %s -> %s, want one restart", restarts, r)
	}
	// Same IDs, same states: nothing was lost on either side.
	if err := n.state(cctr, "CONTAINER_RUNNING"); err != nil {
		t.Error(err)
	}
	pods := n.crictlMust("pods", "-q", "--state", "Ready")
	for _, id := range []string{npod, cpod} {
		if !strings.Contains(pods, id) {
			t.Errorf("pod %s not listed Ready after the restart: %q", id, pods)
		}
	}
	if out := n.crictlMust("exec", cctr, "echo", "still here"); out != "still here" {
		t.Errorf("exec after restart: %q", out)
	}
}

// (d) The iSulad code path: an isulad-kind handler, pointed at containerd
// because iSulad cannot be installed here. Its name is not one of iSulad's
// runtimes, so the remote's default runtime serves it; "lcr" would be
// passed through as is (see runtimes/remote's unit tests).
func TestIsuladHandlerAgainstContainerd(t *testing.T) {
	n := start(t, "\n[handlers.isulad]\nbackend = \"isulad\"\naddress = \"unix://@SOCK@\"\n")
	n.eventually("isulad handler ready", 30*time.Second, func() error { return n.handlerReady("isulad", true) })
	n.crictlMust("pull", busybox)
	pod, ctr := n.runContainer("isu", "isulad", busybox, "sh", "-c", "echo via isulad path; exec sleep 3600")
	n.eventually("container running", 30*time.Second, func() error { return n.state(ctr, "CONTAINER_RUNNING") })
	handler := n.crictlMust("inspectp", "-o", "go-template", "--template", "{{.status.runtimeHandler}}", pod)
	if handler != "isulad" {
		t.Errorf("pod runtime handler %q, want isulad", handler)
	}
	if out := n.crictlMust("exec", ctr, "echo", "exec via isulad"); out != "exec via isulad" {
		t.Errorf("exec through the isulad handler: %q", out)
	}
	n.eventually("logs", 10*time.Second, func() error {
		if out, err := n.crictl("logs", ctr); err != nil || !strings.Contains(out, "via isulad path") {
			return errorf("logs %q: %v", out, err)
		}
		return nil
	})
	// Listed once, under the isulad handler, although the runc handler's
	// backend sees the same containerd.
	if ps := n.crictlMust("ps", "-q"); ps != ctr {
		t.Errorf("crictl ps = %q, want only %s", ps, ctr)
	}
	n.crictlMust("rmp", "-f", pod)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var v int
	for _, c := range strings.TrimSpace(s) {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		v = v*10 + int(c-'0')
	}
	return v
}
