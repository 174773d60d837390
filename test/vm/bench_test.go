//go:build e2e

package vm

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"corral.io/corral/runtimes/qemu"
)

// floorInit is the static init of the floor measurement: the least a
// guest can do, print a line and reset.
const floorInit = `#include <fcntl.h>
#include <unistd.h>
#include <sys/reboot.h>
int main(void) {
	int fd = open("/dev/console", O_WRONLY);
	write(fd, "FLOOR-READY\n", 12);
	sync();
	reboot(RB_AUTOBOOT);
	return 0;
}
`

// floorInitrd builds a cpio with only that init.
func floorInitrd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.WriteFile(filepath.Join(dir, "init.c"), []byte(floorInit), 0o644)
	for _, c := range [][]string{
		{"gcc", "-static", "-O2", "-o", filepath.Join(root, "init"), filepath.Join(dir, "init.c")},
		{"mknod", "-m", "600", filepath.Join(root, "dev", "console"), "c", "5", "1"},
		{"sh", "-c", "cd " + root + " && find . | cpio -o -H newc --quiet > " + filepath.Join(dir, "floor.img")},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	return filepath.Join(dir, "floor.img")
}

// bootFloor boots the same microVM (same accelerator, kernel, size and
// kernel arguments as a VM pod) to the static init and returns the time
// from exec to its line on the console.
func bootFloor(t *testing.T, kernel, initrd string) time.Duration {
	t.Helper()
	a := qemu.DetectAccel(qemu.ReadHostInfo())
	dir := t.TempDir()
	args := qemu.Args(a, qemu.Machine{Kernel: kernel, Initrd: initrd, MemoryMiB: qemu.DefaultMemoryMiB, CPUs: qemu.DefaultCPUs,
		AgentSocket: filepath.Join(dir, "a.sock"), QMPSocket: filepath.Join(dir, "q.sock"), Console: "/dev/null"})
	for i, v := range args {
		if v == "-serial" {
			args[i+1] = "stdio"
		}
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stdin = nil
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "FLOOR-READY") {
			return time.Since(t0)
		}
	}
	t.Fatalf("floor VM exited without its line")
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestVMBench measures RunPodSandbox → first container running against the
// floor, alternating, and logs both (no assertion on timing). With
// CORRAL_VM_BENCH_OUT set, the result line is appended to that file.
func TestVMBench(t *testing.T) {
	n := startNode(t)
	floor := floorInitrd(t)
	dir := t.TempDir()
	const rounds = 5
	var floors, runps, firsts []time.Duration
	var rss []int // MiB of the QEMU process with one idle container
	for i := 0; i < rounds; i++ {
		floors = append(floors, bootFloor(t, filepath.Join(n.assets, "vmlinux"), floor))
		podCfg := writeJSON(t, dir, "pod.json", map[string]any{
			"metadata": map[string]string{"name": fmt.Sprintf("bench%d", i), "namespace": "default", "uid": fmt.Sprintf("bench-%d", i)},
			"linux":    map[string]any{},
		})
		ctrCfg := writeJSON(t, dir, "ctr.json", map[string]any{
			"metadata": map[string]string{"name": "c"},
			"image":    map[string]string{"image": "localhost/corral/busybox:latest"},
			"command":  []string{"sleep", "3600"},
			"linux":    map[string]any{},
		})
		t0 := time.Now()
		pod := n.crictlOK("runp", "--runtime", "vm", podCfg)
		runps = append(runps, time.Since(t0))
		ctr := n.crictlOK("create", pod, ctrCfg, podCfg)
		n.crictlOK("start", ctr)
		firsts = append(firsts, time.Since(t0))
		for _, pid := range qemuPIDs(n.root) {
			st, _ := os.ReadFile("/proc/" + pid + "/status")
			for _, l := range strings.Split(string(st), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
					var kb int
					fmt.Sscan(f[1], &kb)
					rss = append(rss, kb/1024)
				}
			}
		}
		n.crictlOK("rmp", "-f", pod)
	}
	fm, rm, pm := median(floors), median(runps), median(firsts)
	slices.Sort(rss)
	medRSS := 0
	if len(rss) > 0 {
		medRSS = rss[len(rss)/2]
	}
	line := fmt.Sprintf("| %s | %d | %d ms | %d ms | %d ms | %.2f× | %d MiB |", qemu.DetectAccel(qemu.ReadHostInfo()).Name, rounds,
		fm.Milliseconds(), rm.Milliseconds(), pm.Milliseconds(), float64(pm)/float64(fm), medRSS)
	t.Logf("floor %v, runp %v, runp→running %v, qemu RSS %v MiB\n%s", floors, runps, firsts, rss, line)
	if out := os.Getenv("CORRAL_VM_BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}
