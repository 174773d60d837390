//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// knownFailures are the critest specs whose meaning does not hold for a
// host process on the native handler, keyed by a substring of the spec name.
// docs/CONFORMANCE.md gives the same list with the reasons; keep them in
// step. Any other failing spec fails TestCritestNative.
var knownFailures = map[string]string{
	// Images: the native handler has one image, the host, and refuses to
	// pull any other (InvalidArgument). -test-images-file maps only the
	// default and web-server images; these specs name others.
	"Image Manager":                "pulls, lists and removes registry test images",
	"Image Consistency":            "pulls and removes registry test images",
	"Image Identifier Consistency": "pulls registry test images",
	"Image Volume":                 "mounts an OCI image as a volume",
	"Multiple Containers":          "runs the e2e httpd image (hard-coded)",
	"should support ContainerPID":  "runs the e2e nginx image (hard-coded)",
	"should support HostPID":       "runs the e2e nginx image (hard-coded)",
	"should support PodPID":        "runs the e2e nginx image (hard-coded)",
	"NoNewPrivs":                   "needs the setuid nonewprivs image",
	"portforward in host network":  "runs the hostnet-nginx image",
	// No entrypoint: the host image has none, so a container needs a
	// command; these specs start the web-server image without one.
	"should support preserving container attributes": "container without a command (image entrypoint)",
	"port mapping with host port and container port": "container without a command (image entrypoint)",
	"port mapping with only container port":          "container without a command (image entrypoint)",
	"should support portforward [Conformance]":       "container without a command (image entrypoint)",
	// By design of the native backend: a container's mount namespace is a
	// slave of the host's, so Bidirectional propagation is refused.
	"mount with 'rshared'": "Bidirectional propagation refused (InvalidArgument)",

	// Gaps of the native backend that should pass for a host process: open
	// work, listed in docs/CONFORMANCE.md. Remove an entry when it passes.
	"runtime should support MaskedPaths":                 "gap: masked paths not enforced as critest checks",
	"runtime should support ReadonlyPaths":               "gap: read-only paths not enforced as critest checks",
	"runtime should support that ReadOnlyRootfs is true": "gap: read-only rootfs not enforced as critest checks",
}

// hostDamaging are specs skipped because, on a runtime whose rootfs is the
// host's, a missing protection changes the machine itself: the seccomp
// localhost spec runs `chmod 400 /` and expects seccomp to refuse it (on
// this machine it once left / mode 0400, and every non-root process
// failed). docs/CONFORMANCE.md lists them.
var hostDamaging = []string{
	`should support seccomp localhost profile on the container`,
	// Runs `touch test.go` in the container's working directory, /: on the
	// native handler that is the host's root (it left /test.go behind).
	`should support that ReadOnlyRootfs is false`,
}

// minPassed is the pass count recorded in docs/CONFORMANCE.md; a run that
// passes fewer specs is a regression even if every failure is "known".
const minPassed = 63

// TestCritestNative runs the CRI conformance suite (critest v1.37.0) against
// Corral with the native handler, every test image mapped to the host image
// (the only image the native handler runs) and a CNI bridge of its own.
func TestCritestNative(t *testing.T) {
	critest := tool(t, "critest")
	dir := scratch(t, "critest")
	cni := newCNINet(t, dir)
	// critest assumes busybox in its images: `top` as the default command
	// (the host's procps top exits at once without a terminal, "failed tty
	// get", so containers would not be running when specs exec into them),
	// `ping` and `brctl` for the capability specs (not on a Debian host).
	// The node runs in a mount namespace of its own whose PATH starts with
	// those busybox applets (hack/tools/busybox.sh); critest joins that
	// namespace, so mount specs see the same mounts as the runtime. Nothing
	// on the host changes.
	busybox := tool(t, "busybox")
	n := startNodeWith(t, nodeOptions{config: cni.config(), ownMountNS: true,
		hostTools: map[string]string{"top": busybox, "ping": busybox, "brctl": busybox, "touch": busybox}})
	images := writeFile(t, dir, "images.yaml",
		"defaultTestContainerImage: "+hostImage+"\nwebServerTestImage: "+hostImage+"\n")

	results := resultsDir(t)
	logPath := filepath.Join(results, "critest-native-"+time.Now().UTC().Format("20060102T150405Z")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ep := "unix://" + n.sock
	parallel := os.Getenv("CRITEST_PARALLEL")
	if parallel == "" {
		parallel = "4"
	}
	argv := n.inNS(critest, "--runtime-endpoint", ep, "--image-endpoint", ep,
		"-runtime-handler", "native", "-test-images-file", images, "-parallel", parallel,
		"-ginkgo.skip", strings.Join(hostDamaging, "|"))
	cmd := exec.Command(argv[0], argv[1:]...)
	// critest re-executes itself through the ginkgo CLI next to it, and
	// writes its report files into the working directory.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(critest)+":"+os.Getenv("PATH"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	t0 := time.Now()
	runErr := cmd.Run()
	took := time.Since(t0).Round(time.Second)
	data, _ := os.ReadFile(logPath)
	sum := summarize(string(data))
	t.Logf("critest native: %d passed, %d failed of %d ran in %s (exit: %v); log: %s", sum.passed, len(sum.failed), sum.ran, took, runErr, logPath)
	if sum.ran == 0 {
		t.Fatalf("critest produced no summary; tail of %s:\n%s", logPath, tail(string(data), 40))
	}
	var unexpected []string
	for _, f := range sum.failed {
		known := false
		for k := range knownFailures {
			if strings.Contains(f, k) {
				known = true
				break
			}
		}
		if !known {
			unexpected = append(unexpected, f+"\n      "+sum.reason[f])
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("%d critest specs failed that should pass for a host process (see %s):\n  %s",
			len(unexpected), logPath, strings.Join(unexpected, "\n  "))
	}
	if sum.passed < minPassed {
		t.Errorf("critest passed %d specs, fewer than the %d recorded in docs/CONFORMANCE.md", sum.passed, minPassed)
	}
}

type critestSummary struct {
	ran, passed int
	failed      []string          // spec names
	reason      map[string]string // spec name -> first error line
}

var (
	ansi       = regexp.MustCompile("\x1b\\[[0-9;]*m")
	ranRe      = regexp.MustCompile(`Ran (\d+) of \d+ Specs`)
	passedRe   = regexp.MustCompile(`(\d+) Passed`)
	failLineRe = regexp.MustCompile(`^\s*\[FAIL\] (.*)$`)
)

// summarize reads ginkgo's output: the "Ran N of M Specs" and "P Passed"
// lines, the [FAIL] list at the end, and for each failure the first error
// message in its report.
func summarize(out string) critestSummary {
	out = ansi.ReplaceAllString(out, "")
	s := critestSummary{reason: map[string]string{}}
	if m := ranRe.FindAllStringSubmatch(out, -1); m != nil {
		s.ran, _ = strconv.Atoi(m[len(m)-1][1])
	}
	if m := passedRe.FindAllStringSubmatch(out, -1); m != nil {
		s.passed, _ = strconv.Atoi(m[len(m)-1][1])
	}
	seen := map[string]bool{}
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if m := failLineRe.FindStringSubmatch(l); m != nil && !seen[m[1]] {
			seen[m[1]] = true
			s.failed = append(s.failed, m[1])
		}
	}
	sort.Strings(s.failed)
	// A failure's report starts with "• [FAILED]" followed by the spec name
	// on the next line; its message is the first line after "[FAILED]" in
	// the timeline, or an "Unexpected error" line.
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "• [FAILED]") && !strings.HasPrefix(strings.TrimSpace(l), "• [PANICKED]") {
			continue
		}
		if i+1 >= len(lines) {
			break
		}
		name := strings.TrimSpace(lines[i+1])
		for j := i + 2; j < len(lines) && j < i+80; j++ {
			t := strings.TrimSpace(lines[j])
			if strings.HasPrefix(t, "•") || strings.HasPrefix(t, "------") {
				break
			}
			if strings.Contains(t, "Unexpected error") || strings.Contains(t, "Expected") || strings.Contains(t, "rpc error") {
				if j+1 < len(lines) && strings.HasSuffix(t, "Expected") {
					t += " " + strings.TrimSpace(lines[j+1]) + " " + strings.TrimSpace(lines[j+2])
				}
				s.reason[name] = t
				break
			}
		}
	}
	return s
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// resultsDir keeps logs of the real-component runs after the test's temp
// dirs are gone (E2E_RESULTS, default /var/tmp/corral-e2e-results).
func resultsDir(t *testing.T) string {
	d := os.Getenv("E2E_RESULTS")
	if d == "" {
		d = "/var/tmp/corral-e2e-results"
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}
