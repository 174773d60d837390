//go:build e2e

package containers

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// `corralctl image import FILE.tar` on an offline node: the image lands in
// containerd's k8s.io namespace, Corral's CRI lists it, and a container
// pod runs from it without any pull.
func TestImageImportForOfflineNodes(t *testing.T) {
	n := start(t, "")
	// A docker-save tarball under a name no registry serves.
	src, err := name.ParseReference(registry.addr+"/e2e-test-images/busybox:1.29-2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	const imported = "example.invalid/corral/offline:1"
	tag, _ := name.NewTag(imported)
	file := filepath.Join(n.root, "offline.tar")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(filepath.Join(bin, "corralctl"), "--root", n.root, "image", "import", "--tool", filepath.Join(n.bin, "ctr"), file)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("corralctl image import: %v\n%s", err, out)
	}
	if imgs := n.crictlMust("images"); !strings.Contains(imgs, "example.invalid/corral/offline") {
		t.Fatalf("imported image not listed through Corral:\n%s", imgs)
	}
	pod, ctr := n.runContainer("offline", "runc", imported, "sh", "-c", "echo imported image runs; exec sleep 3600")
	n.eventually("container from the imported image running", 30*time.Second, func() error { return n.state(ctr, "CONTAINER_RUNNING") })
	n.crictlMust("rmp", "-f", pod)

	// A bad file fails with the runtime's message, not silently.
	if out, err := exec.Command(filepath.Join(bin, "corralctl"), "--root", n.root, "image", "import", "--tool", filepath.Join(n.bin, "ctr"), "/nonexistent.tar").CombinedOutput(); err == nil {
		t.Errorf("import of a missing file succeeded: %s", out)
	}
}
