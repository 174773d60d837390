//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// daemon-reload picks up a changed unit file; the next restart runs the new
// command.
func TestDaemonReload(t *testing.T) {
	dir := t.TempDir()
	unitText := func(word string) string {
		return fmt.Sprintf("[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'echo %s > %s/out'\n", word, dir)
	}
	n := start(t, map[string]string{"conf.service": unitText("first")})
	n.Must("start", "conf.service")
	n.Write("conf.service", unitText("second"))
	n.Must("daemon-reload")
	if cat := n.Must("cat", "conf.service"); !strings.Contains(cat, "echo second") {
		t.Errorf("cat after daemon-reload shows the old file:\n%s", cat)
	}
	n.Must("restart", "conf.service")
	b, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "second" {
		t.Errorf("restart after daemon-reload ran %q, want the new command", got)
	}
}

// Conflicts= stops the other unit; isolate stops everything the target does
// not want.
func TestConflictsAndIsolate(t *testing.T) {
	sleep := "[Service]\nExecStart=/bin/sleep 1000\n"
	n := start(t, map[string]string{
		"a.service":     sleep,
		"b.service":     "[Unit]\nConflicts=a.service\n" + sleep,
		"c.service":     sleep,
		"only-c.target": "[Unit]\nAllowIsolate=yes\nWants=c.service\n",
	})
	n.Must("start", "a.service")
	n.Must("start", "b.service")
	if st := strings.TrimSpace(mustOut(n.Ctl("is-active", "a.service"))); st != "inactive" {
		t.Errorf("a.service is %s after starting the conflicting b.service", st)
	}
	n.Must("start", "a.service") // conflicts the other way round too
	if st := strings.TrimSpace(mustOut(n.Ctl("is-active", "b.service"))); st != "inactive" {
		t.Errorf("b.service is %s after starting a.service", st)
	}
	n.Must("isolate", "only-c.target")
	for unit, want := range map[string]string{"a.service": "inactive", "c.service": "active", "only-c.target": "active"} {
		if st := strings.TrimSpace(mustOut(n.Ctl("is-active", unit))); st != want {
			t.Errorf("after isolate: %s is %s, want %s", unit, st, want)
		}
	}
}

// When a unit dies on its own, units bound to it stop and its OnFailure=
// unit starts.
func TestBindsToAndOnFailure(t *testing.T) {
	dir := t.TempDir()
	n := start(t, map[string]string{
		"main.service":    "[Unit]\nOnFailure=alarm.service\n[Service]\nExecStart=/bin/sleep 1000\n",
		"sidecar.service": "[Unit]\nBindsTo=main.service\nAfter=main.service\n[Service]\nExecStart=/bin/sleep 1000\n",
		"alarm.service":   fmt.Sprintf("[Service]\nType=oneshot\nExecStart=/bin/touch %s/alarm\n", dir),
	})
	n.Must("start", "sidecar.service")
	if st := strings.TrimSpace(n.Must("is-active", "main.service")); st != "active" {
		t.Fatalf("BindsTo did not pull main.service in: %s", st)
	}
	pid, _ := strconv.Atoi(n.Prop("main.service", "MainPID"))
	if pid <= 0 {
		t.Fatal("no main PID")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	n.Eventually("sidecar stopped and alarm ran", func() error {
		if st := strings.TrimSpace(mustOut(n.Ctl("is-active", "sidecar.service"))); st != "inactive" {
			return fmt.Errorf("sidecar.service is %s", st)
		}
		if _, err := os.Stat(filepath.Join(dir, "alarm")); err != nil {
			return fmt.Errorf("OnFailure unit did not run: %v", err)
		}
		return nil
	})
	if n.Code("is-failed", "main.service") != 0 {
		t.Errorf("main.service is not failed after SIGKILL")
	}
	if r := n.Prop("main.service", "Result"); r != "signal" {
		t.Errorf("main.service Result=%q, want signal", r)
	}
}

// A non-root caller may read but not change anything.
func TestAPIPeerCredentials(t *testing.T) {
	n := start(t, map[string]string{"x.service": "[Service]\nExecStart=/bin/sleep 1000\n"})
	// Let uid 65534 reach the socket: t.TempDir's directories are 0700.
	for d := n.Root; strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	asNobody := func(args ...string) (string, error) {
		cmd := commandAs(65534, filepath.Join(bin, "corralctl"), append([]string{"--root", n.Root}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := asNobody("list-units", "--all"); err != nil || !strings.Contains(out, "x.service") {
		t.Errorf("list-units as nobody: %v\n%s", err, out)
	}
	out, err := asNobody("start", "x.service")
	if err == nil {
		t.Errorf("start as nobody succeeded")
	}
	if !strings.Contains(strings.ToLower(out), "permission") && !strings.Contains(strings.ToLower(out), "access denied") {
		t.Errorf("start as nobody: no permission error:\n%s", out)
	}
	if st := strings.TrimSpace(mustOut(n.Ctl("is-active", "x.service"))); st != "inactive" {
		t.Errorf("x.service is %s after a refused start", st)
	}
}

// Outside PID 1 the host's systemd unit directories are not searched: they
// belong to the host's own init (their sysinit.target would re-run early
// boot). Corral's own directories are.
func TestHostUnitsNotLoadedOutsidePID1(t *testing.T) {
	n := start(t, nil)
	for _, d := range []string{"lib/systemd/system", "etc/corral/system"} {
		p := filepath.Join(n.Root, d)
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, strings.ReplaceAll(d, "/", "-")+".service"), []byte("[Service]\nExecStart=/bin/sleep 1000\n"), 0o644)
	}
	n.Must("daemon-reload")
	if c := n.Code("status", "lib-systemd-system.service"); c != 4 {
		t.Errorf("status of a unit in <root>/lib/systemd/system: exit %d, want 4 (no such unit)", c)
	}
	n.Must("start", "etc-corral-system.service")
}

// The core announces the default target on its stderr (the console under
// PID 1): boot tests wait for this line.
func TestReachedDefaultTarget(t *testing.T) {
	n := start(t, map[string]string{
		"app.service": "[Service]\nExecStart=/bin/sleep 1000\n[Install]\nWantedBy=multi-user.target\n",
	})
	n.Must("enable", "app.service")
	n.Eventually("reached line", func() error {
		if !strings.Contains(n.Out.String(), "corral: reached multi-user.target\n") {
			return fmt.Errorf("no 'corral: reached multi-user.target' in the output")
		}
		return nil
	})
}
