//go:build e2e

package vm

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tool runs hack/tools/<name>.sh and returns the last line it prints.
func tool(t *testing.T, name string, args ...string) string {
	return script(t, filepath.Join("hack", "tools", name+".sh"), args...)
}

// background starts a helper process for the test's lifetime.
func background(t *testing.T, logf string, env []string, argv ...string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	out, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf)
			t.Logf("%s:\n%s", filepath.Base(logf), tail(string(b), 40))
		}
	})
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func waitFile(t *testing.T, p string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear in %s", p, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestVMPodOCIImageOnPodNetwork: a VM pod runs an ordinary OCI image from
// the offline registry, pulled through containerd, and answers HTTP at its
// CNI pod IP from inside the guest; a second container of another image
// shares the guest's network. Removal leaves no netns mount, CNI
// allocation or QEMU behind.
func TestVMPodOCIImageOnPodNetwork(t *testing.T) {
	off := startOffline(t, "corral-vm-oci-")
	ctd, path := off.ctd, off.path
	n := startNodeWith(t, off.extra(), []string{path})
	dir := t.TempDir()
	podCfg := writeJSON(t, dir, "pod.json", map[string]any{
		"metadata":      map[string]string{"name": "vmweb", "namespace": "default", "uid": "vm-e2e-oci"},
		"log_directory": n.logsDir,
		"annotations":   map[string]string{"corral.io/runtime": "vm"},
		"hostname":      "vmweb-host",
		"dns_config":    map[string]any{"servers": []string{"10.96.0.10"}, "searches": []string{"default.svc.cluster.local"}},
		"linux":         map[string]any{},
	})
	const web = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	const bb = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	webCfg := writeJSON(t, dir, "web.json", map[string]any{
		"metadata": map[string]string{"name": "web"},
		"image":    map[string]string{"image": web},
		"log_path": "web.log",
		"linux":    map[string]any{},
	})
	shCfg := writeJSON(t, dir, "sh.json", map[string]any{
		"metadata": map[string]string{"name": "sh"},
		"image":    map[string]string{"image": bb},
		"command":  []string{"sleep", "3600"},
		"linux":    map[string]any{"security_context": map[string]any{"run_as_user": map[string]any{"value": 1000}}},
	})

	t0 := time.Now()
	for _, img := range []string{web, bb} {
		n.crictlOK("pull", "--pod-config", podCfg, img)
	}
	tPull := time.Since(t0)
	t1 := time.Now()
	pod := n.crictlOK("runp", "--runtime", "vm", podCfg)
	tRunp := time.Since(t1)
	ip := n.crictlOK("inspectp", "-o", "go-template", "--template", "{{.status.network.ip}}", pod)
	if ip == "" || ip == "<no value>" {
		t.Fatalf("VM pod has no IP")
	}
	t2 := time.Now()
	ctr := n.crictlOK("create", pod, webCfg, podCfg)
	tCreate := time.Since(t2)
	n.crictlOK("start", ctr)
	tStart := time.Since(t1)

	// The web server (the image's entrypoint, from its OCI config) runs in
	// the guest and answers at the pod IP from the host.
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + ip + ":80/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			con, _ := os.ReadFile(filepath.Join(n.root, "run", "corral", "qemu", "vm", pod[:16], "console.log"))
			t.Fatalf("GET http://%s/ never answered: %v\nconsole:\n%s", ip, err, tail(string(con), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	tServe := time.Since(t1)
	if !strings.Contains(body, "Welcome to nginx!") {
		t.Errorf("GET pod IP = %q, want the image's web server", body)
	}
	t.Logf("pull (cold, 2 images) %s; runp %s (with CNI); create (unpack to ext4 + slot) %s; runp→running %s; runp→HTTP at %s %s",
		tPull.Round(time.Millisecond), tRunp.Round(time.Millisecond), tCreate.Round(time.Millisecond),
		tStart.Round(time.Millisecond), ip, tServe.Round(time.Millisecond))

	// It is the guest that holds the address: the guest kernel answers
	// with the address on its eth0.
	if got := n.crictlOK("exec", ctr, "sh", "-c", "ip -4 -o addr show eth0"); !strings.Contains(got, ip+"/") {
		t.Errorf("guest eth0: %q, want %s", got, ip)
	}
	kver, _ := os.ReadFile(filepath.Join(n.assets, "kver"))
	if got := n.crictlOK("exec", ctr, "uname", "-r"); got != strings.TrimSpace(string(kver)) {
		t.Errorf("exec uname -r = %q, want the guest kernel", got)
	}

	// A second image in the same pod: another spare drive, same network.
	t3 := time.Now()
	sh := n.crictlOK("create", pod, shCfg, podCfg)
	n.crictlOK("start", sh)
	t.Logf("second container (other image) create+start %s", time.Since(t3).Round(time.Millisecond))
	if got := n.crictlOK("exec", sh, "wget", "-qO-", "http://127.0.0.1:80/"); !strings.Contains(got, "Welcome to nginx!") {
		t.Errorf("second container GET localhost = %q", got)
	}
	if got := n.crictlOK("exec", ctr, "cat", "/etc/resolv.conf"); !strings.Contains(got, "nameserver 10.96.0.10") || !strings.Contains(got, "search default.svc.cluster.local") {
		t.Errorf("resolv.conf in the guest = %q, want the pod's DNS config", got)
	}
	if got := n.crictlOK("exec", ctr, "hostname"); got != "vmweb-host" {
		t.Errorf("hostname in the guest = %q", got)
	}
	if got := n.crictlOK("exec", sh, "id", "-u"); got != "1000" {
		t.Errorf("run_as_user 1000: id -u = %q", got)
	}
	if got := n.crictlOK("exec", ctr, "id", "-u"); got != "0" {
		t.Errorf("image without User: id -u = %q, want 0", got)
	}

	// Each container has its own image's root: the busybox image has no
	// nginx, the web image has it.
	if got, err := n.try("exec", sh, "ls", "/usr/sbin/nginx"); err == nil {
		t.Errorf("busybox container sees the web image's files: %q", got)
	}
	n.crictlOK("exec", ctr, "ls", "/usr/sbin/nginx")

	for _, c := range []string{sh, ctr} {
		n.crictlOK("stop", "-t", "2", c)
		n.crictlOK("rm", c)
	}
	n.crictlOK("stopp", pod)
	n.crictlOK("rmp", pod)
	if pids := qemuPIDs(n.root); len(pids) != 0 {
		t.Errorf("after rmp: qemu processes %v", pids)
	}
	ipam, _ := filepath.Glob(filepath.Join(ctd, "cni", "ipam", "*", ip))
	if len(ipam) != 0 {
		t.Errorf("after rmp: CNI still holds %s (%v)", ip, ipam)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(filepath.Join(n.root, "run", "corral", "qemu"))) {
		t.Errorf("after rmp: a mount under the VM run dir is left:\n%s", mounts)
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get("http://" + ip + ":80/"); err == nil {
		t.Errorf("after rmp: %s still answers", ip)
	}

	// The next pod of the same image finds its ext4 cached: create is a
	// copy into a slot, not a build.
	pod2Cfg := writeJSON(t, dir, "pod2.json", map[string]any{
		"metadata": map[string]string{"name": "vmweb2", "namespace": "default", "uid": "vm-e2e-oci-2"},
		"linux":    map[string]any{},
	})
	pod2 := n.crictlOK("runp", "--runtime", "vm", pod2Cfg)
	t4 := time.Now()
	ctr2 := n.crictlOK("create", pod2, webCfg, pod2Cfg)
	tCached := time.Since(t4)
	n.crictlOK("start", ctr2)
	deadline = time.Now().Add(30 * time.Second)
	for {
		// The server may still be starting (TCG).
		got, err := n.try("exec", ctr2, "wget", "-qO-", "http://127.0.0.1:80/")
		if err == nil && strings.Contains(got, "Welcome to nginx!") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second pod: GET = %q %v", got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("create with the image cached %s", tCached.Round(time.Millisecond))
	n.crictlOK("rmp", "-f", pod2)
}

// offline is the image side of a node without internet: the offline
// registry (test/tools/imgreg, with certs.d mirrors for registry.k8s.io)
// and a containerd of the test's own pulling from it, with a CNI bridge
// network whose name and subnet derive from its directory.
type offline struct {
	work, ctd, sock string
	path            string   // PATH=... with containerd, shim, ctr and runc first
	containerd      []string // its command line
}

// extra is the corral.toml part that makes VM pods pull through this
// containerd and attach to its CNI network.
func (o *offline) extra() string {
	return fmt.Sprintf("[handlers.runc]\nbackend = \"containerd\"\naddress = %q\n[cni]\nconf_dir = %q\n", o.sock, filepath.Join(o.ctd, "cni", "net.d"))
}

// startOffline starts the registry and containerd in a fresh dir under
// /var/tmp (prefix names it); both stop, and the bridge goes, at cleanup.
func startOffline(t *testing.T, prefix string) *offline {
	t.Helper()
	o := startOfflineUnit(t, prefix)
	background(t, filepath.Join(o.work, "containerd.log"), []string{o.path}, o.containerd...)
	o.waitContainerd(t)
	return o
}

// startOfflineUnit starts only the registry; the caller runs o.containerd
// (as a Corral unit: o.unit) and then calls o.waitContainerd.
func startOfflineUnit(t *testing.T, prefix string) *offline {
	t.Helper()
	ctdBin := tool(t, "containerd")
	imgreg := tool(t, "images")
	work, err := os.MkdirTemp("/var/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(work, 0o755)
	t.Cleanup(func() { os.RemoveAll(work) })
	o := &offline{work: work, ctd: filepath.Join(work, "ctd")}

	certs := filepath.Join(work, "certs.d")
	background(t, filepath.Join(work, "imgreg.log"), nil, imgreg, "-addr", "127.0.0.1:0", "-certs-dir", certs, "-addr-file", filepath.Join(work, "addr"))
	waitFile(t, filepath.Join(work, "addr"), 60*time.Second)

	ctdCfg := tool(t, "containerd-config", o.ctd, certs)
	o.path = "PATH=" + ctdBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// Removed last: pods on it are gone by then.
	bridge := waitFile(t, filepath.Join(o.ctd, "cni", "bridge"), time.Second)
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	o.containerd = []string{filepath.Join(ctdBin, "containerd"), "--config", ctdCfg}
	o.sock = filepath.Join(o.ctd, "containerd.sock")
	return o
}

// unit is a service unit running this containerd, stopped with its shims
// (KillMode=control-group), so a test leaves none behind.
func (o *offline) unit() string {
	return fmt.Sprintf("[Unit]\nDescription=containerd of the test\n[Service]\nType=notify\nEnvironment=%s\nExecStart=%s\nDelegate=yes\nTimeoutStopSec=20\n",
		o.path, strings.Join(o.containerd, " "))
}

// waitContainerd waits for containerd's socket.
func (o *offline) waitContainerd(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(o.sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd socket never appeared")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
