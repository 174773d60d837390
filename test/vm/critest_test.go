//go:build e2e

package vm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"corral.io/corral/test/kubelet"
)

var (
	ansi      = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	ranRe     = regexp.MustCompile(`Ran (\d+) of (\d+) Specs`)
	passedRe  = regexp.MustCompile(`(\d+) Passed`)
	failedRe  = regexp.MustCompile(`(\d+) Failed`)
	failureRe = regexp.MustCompile(`(?m)^\s*\[FAIL\] (.*)$`)
)

// vmCritestMinPassed is the floor of the last recorded run
// (docs/CONFORMANCE.md, "VM pods"): a run that passes fewer fails.
const vmCritestMinPassed = 60

// TestCritestVM runs critest v1.37.0 with -runtime-handler vm through
// Corral, images from the offline registry pulled through containerd
// (Corral's default handler is vm, so pulls without a handler go through
// the qemu backend to containerd too). Every pod boots a TCG microVM, so a
// run takes longer than `make test` should wait: it runs only with
// CORRAL_VM_CRITEST=1 (docs/CONFORMANCE.md has the command). The log goes
// to $CORRAL_RESULTS or /var/tmp/corral-vm-results.
func TestCritestVM(t *testing.T) {
	if os.Getenv("CORRAL_VM_CRITEST") != "1" {
		t.Skip("long (a microVM per spec under TCG): set CORRAL_VM_CRITEST=1")
	}
	critest := tool(t, "critest")
	off := startOffline(t, "corral-vm-critest-")
	// The mount-propagation specs mount in critest's TMPDIR (off.work) and
	// leave the mounts when they fail; before off.work is removed.
	t.Cleanup(func() { kubelet.UnmountUnder(off.work) })
	n := startNodeDefault(t, "vm", off.extra(), []string{off.path})
	sock := filepath.Join(n.root, "run", "corral", "cri.sock")

	dir := os.Getenv("CORRAL_RESULTS")
	if dir == "" {
		dir = "/var/tmp/corral-vm-results"
	}
	os.MkdirAll(dir, 0o755)
	logPath := filepath.Join(dir, "critest-vm-"+time.Now().UTC().Format("20060102T150405Z")+".log")
	parallel := os.Getenv("CORRAL_VM_CRITEST_PARALLEL")
	if parallel == "" {
		parallel = "2"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	args := []string{"--runtime-endpoint", "unix://" + sock, "--image-endpoint", "unix://" + sock,
		"-runtime-handler", "vm", "-parallel", parallel}
	if f := os.Getenv("CORRAL_VM_CRITEST_FOCUS"); f != "" {
		args = append(args, "-ginkgo.focus", f)
	}
	cmd := exec.CommandContext(ctx, critest, args...)
	// critest -parallel re-executes itself through the ginkgo CLI next to
	// it; its temp files (a symlink to itself, pod log dirs) stay out of
	// /tmp, which is not safe here.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(critest)+":"+strings.TrimPrefix(off.path, "PATH="), "TMPDIR="+off.work)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	runErr := cmd.Run()
	took := time.Since(t0)
	os.WriteFile(logPath, out.Bytes(), 0o644)
	text := ansi.ReplaceAllString(out.String(), "")
	m := ranRe.FindAllStringSubmatch(text, -1)
	if len(m) == 0 {
		t.Fatalf("critest produced no summary (%v); log %s:\n%s", runErr, logPath, tail(text, 40))
	}
	ran, _ := strconv.Atoi(m[len(m)-1][1])
	var passed, failed int
	if p := passedRe.FindAllStringSubmatch(text, -1); len(p) > 0 {
		passed, _ = strconv.Atoi(p[len(p)-1][1])
	}
	if f := failedRe.FindAllStringSubmatch(text, -1); len(f) > 0 {
		failed, _ = strconv.Atoi(f[len(f)-1][1])
	}
	seen := map[string]bool{}
	var failures []string
	for _, f := range failureRe.FindAllStringSubmatch(text, -1) {
		if s := strings.TrimSpace(f[1]); !seen[s] {
			seen[s] = true
			failures = append(failures, s)
		}
	}
	sort.Strings(failures)
	t.Logf("critest -runtime-handler vm: %d passed, %d failed of %d ran in %s; log %s", passed, failed, ran, took.Round(time.Second), logPath)
	for _, f := range failures {
		t.Logf("  [FAIL] %s", f)
	}
	if passed < vmCritestMinPassed {
		t.Errorf("%d specs passed, fewer than the recorded floor %d", passed, vmCritestMinPassed)
	}
	if qs := qemuPIDs(n.root); len(qs) != 0 {
		t.Logf("after critest: %d QEMU processes still run (%v); the node's cleanup removes them", len(qs), qs)
	}
}
