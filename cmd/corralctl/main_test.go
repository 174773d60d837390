package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/apiserver/apiservertest"
)

func testFake() *apiservertest.Fake {
	f := apiservertest.New()
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f.AddUnit(apiserver.UnitDetail{
		UnitSummary:   apiserver.UnitSummary{Name: "web.service", Description: "Web server", LoadState: "loaded", ActiveState: "active", SubState: "running"},
		FragmentPath:  "/etc/corral/system/web.service",
		DropIns:       []string{"/etc/corral/system/web.service.d/limits.conf"},
		UnitFileState: "enabled",
		MainPID:       4242,
		ActiveEnter:   start,
		Cgroup:        "/system.slice/web.service",
		Tasks:         apiserver.Usage{Valid: true, Current: 3, Max: 100},
		Memory:        apiserver.Usage{Valid: true, Current: 2 << 20},
	}, apiserver.UnitFile{Path: "/etc/corral/system/web.service", Content: "[Service]\nExecStart=/bin/web\n"})
	f.AddUnit(apiserver.UnitDetail{
		UnitSummary:  apiserver.UnitSummary{Name: "db.service", Description: "Database", LoadState: "loaded", ActiveState: "inactive", SubState: "dead"},
		FragmentPath: "/etc/corral/system/db.service",
	}, apiserver.UnitFile{Path: "/etc/corral/system/db.service", Content: "[Service]\nExecStart=/bin/db\n"})
	f.AddUnit(apiserver.UnitDetail{
		UnitSummary: apiserver.UnitSummary{Name: "bad.service", Description: "Broken", LoadState: "loaded", ActiveState: "failed", SubState: "failed"},
		Result:      "exit-code",
		ExecMain:    apiserver.ExecStatus{PID: 77, Code: "exited", Status: 1},
	})
	f.AddUnit(apiserver.UnitDetail{UnitSummary: apiserver.UnitSummary{Name: "multi-user.target", LoadState: "loaded", ActiveState: "active", SubState: "active"}})
	f.AddLog(apiserver.LogEntry{Time: start, Unit: "web.service", Stream: "stdout", Msg: "listening on :80"})
	f.AddLog(apiserver.LogEntry{Time: start.Add(time.Minute), Unit: "web.service", Stream: "core", Msg: "Started web.service."})
	return f
}

type result struct {
	code           int
	stdout, stderr string
}

func ctl(t *testing.T, root string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"--root", root}, args...), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestExitCodes(t *testing.T) {
	f := testFake()
	f.SetJobResult("bad.service", "failed")
	root := apiservertest.Serve(t, f)
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string // substring
		stderrWant string // substring
	}{
		{[]string{"status", "web"}, 0, "● web.service - Web server", ""},
		{[]string{"status", "db"}, 3, "Active: inactive (dead)", ""},
		{[]string{"status", "bad"}, 3, "Active: failed (Result: exit-code)", ""},
		{[]string{"status", "nope"}, 4, "", "Unit nope.service could not be found."},
		{[]string{"is-active", "web"}, 0, "active\n", ""},
		{[]string{"is-active", "db"}, 3, "inactive\n", ""},
		{[]string{"is-active", "nope"}, 3, "inactive\n", ""},
		{[]string{"is-active", "db", "web"}, 0, "inactive\nactive\n", ""},
		{[]string{"is-active", "-q", "db"}, 3, "", ""},
		{[]string{"is-failed", "bad"}, 0, "failed\n", ""},
		{[]string{"is-failed", "web"}, 1, "active\n", ""},
		{[]string{"is-enabled", "web"}, 1, "disabled\n", ""},
		{[]string{"is-enabled", "nope"}, 1, "", "Failed to get unit file state for nope.service: No such file or directory"},
		{[]string{"start", "nope"}, 5, "", "Failed to start nope.service: Unit nope.service not found."},
		{[]string{"stop", "nope"}, 5, "", "Failed to stop nope.service: Unit nope.service not loaded."},
		{[]string{"start", "bad"}, 1, "", "Job for bad.service failed."},
		{[]string{"start", "db", "nope"}, 5, "", "Unit nope.service not found."},
		{[]string{"cat", "nope"}, 1, "", "No files found for nope.service."},
		{[]string{"cat", "db"}, 0, "# /etc/corral/system/db.service\n[Service]\nExecStart=/bin/db\n", ""},
		{[]string{"show", "-p", "ActiveState,SubState", "web"}, 0, "ActiveState=active\nSubState=running\n", ""},
		{[]string{"show", "-p", "LoadState", "nope"}, 0, "LoadState=not-found\n", ""},
		{[]string{"kill", "-s", "BOGUS", "web"}, 1, "", "Failed to parse signal string BOGUS."},
		{[]string{"kill", "nope"}, 1, "", "Unit nope.service not loaded."},
		{[]string{"list-jobs"}, 0, "No jobs running.", ""},
		{[]string{"reexec-nonsense"}, 1, "", "unknown command"},
		{[]string{"-o", "yaml", "list-units"}, 1, "", "Unknown output"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := ctl(t, root, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderrWant) {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout containing %q, stderr containing %q",
					r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderrWant)
			}
		})
	}
	// The start of db.service went through although nope.service was missing.
	if d, _ := f.Unit("db.service"); d.ActiveState != "active" {
		t.Errorf("db.service is %s after 'start db nope', want active", d.ActiveState)
	}
}

func TestNameCompletion(t *testing.T) {
	for _, tc := range []struct{ in, suffix, want string }{
		{"foo", ".service", "foo.service"},
		{"foo.service", ".service", "foo.service"},
		{"foo.socket", ".service", "foo.socket"},
		{"getty@tty1", ".service", "getty@tty1.service"},
		{"my.app", ".service", "my.app.service"},
		{"multi-user", ".target", "multi-user.target"},
		{"web*", ".service", "web*"},
	} {
		if got := mangle(tc.in, tc.suffix); got != tc.want {
			t.Errorf("mangle(%q, %q) = %q, want %q", tc.in, tc.suffix, got, tc.want)
		}
	}

	// And over the wire: the manager sees completed names and the flags.
	f := testFake()
	root := apiservertest.Serve(t, f)
	if r := ctl(t, root, "restart", "--no-block", "--job-mode", "fail", "web", "db.service"); r.code != 0 {
		t.Fatalf("restart: %+v", r)
	}
	if r := ctl(t, root, "isolate", "multi-user"); r.code != 0 {
		t.Fatalf("isolate: %+v", r)
	}
	if r := ctl(t, root, "enable", "--now", "web"); r.code != 0 || !strings.Contains(r.stderr, "Created symlink") {
		t.Fatalf("enable: %+v", r)
	}
	if r := ctl(t, root, "kill", "-s", "9", "--kill-whom", "main", "web"); r.code != 0 {
		t.Fatalf("kill: %+v", r)
	}
	calls := map[string]bool{}
	for _, c := range f.Calls() {
		calls[c] = true
	}
	for _, want := range []string{
		"Enqueue web.service restart fail wait=false",
		"Enqueue db.service restart fail wait=false",
		"Enqueue multi-user.target start isolate wait=true",
		"Enable [web.service] now=true",
		"Kill web.service main 9",
	} {
		if !calls[want] {
			t.Errorf("manager did not get %q; calls: %q", want, f.Calls())
		}
	}
}

func TestJSONOutput(t *testing.T) {
	root := apiservertest.Serve(t, testFake())
	r := ctl(t, root, "-o", "json", "list-units", "--all", "--type", "service")
	if r.code != 0 {
		t.Fatalf("list-units: %+v", r)
	}
	var units []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &units); err != nil {
		t.Fatalf("list-units json: %v\n%s", err, r.stdout)
	}
	var names []string
	for _, u := range units {
		names = append(names, u["name"].(string))
	}
	if diff := cmp.Diff([]string{"bad.service", "db.service", "web.service"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	// Stable: every field present, keys sorted, same bytes every time.
	want := `{
    "active_state": "failed",
    "description": "Broken",
    "job_id": "0",
    "job_type": "",
    "load_state": "loaded",
    "name": "bad.service",
    "sub_state": "failed"
  }`
	if !strings.Contains(r.stdout, want) {
		t.Errorf("list-units json:\n%s\nwant it to contain\n%s", r.stdout, want)
	}
	if again := ctl(t, root, "-o", "json", "list-units", "--all", "--type", "service"); again.stdout != r.stdout {
		t.Errorf("json output changed between runs:\n%s\n---\n%s", r.stdout, again.stdout)
	}

	r = ctl(t, root, "-o", "json", "status", "web")
	var st []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 || len(st) != 1 {
		t.Fatalf("status json: code %d err %v\n%s", r.code, err, r.stdout)
	}
	if st[0]["main_pid"] != "4242" || st[0]["active_state"] != "active" || st[0]["cgroup"] != "/system.slice/web.service" {
		t.Errorf("status json: %v", st[0])
	}

	r = ctl(t, root, "-o", "json", "is-active", "web", "db")
	var states []map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &states); err != nil || r.code != 0 {
		t.Fatalf("is-active json: code %d err %v\n%s", r.code, err, r.stdout)
	}
	if diff := cmp.Diff([]map[string]string{{"unit": "web.service", "state": "active"}, {"unit": "db.service", "state": "inactive"}}, states); diff != "" {
		t.Errorf("is-active json (-want +got):\n%s", diff)
	}
}

func TestStatusText(t *testing.T) {
	root := apiservertest.Serve(t, testFake())
	r := ctl(t, root, "status", "web")
	for _, want := range []string{
		"● web.service - Web server\n",
		"     Loaded: loaded (/etc/corral/system/web.service; enabled)\n",
		"    Drop-In: /etc/corral/system/web.service.d\n             └─limits.conf\n",
		"     Active: active (running) since ",
		"   Main PID: 4242 (",
		"      Tasks: 3 (limit: 100)\n",
		"     Memory: 2.0M\n",
		"     CGroup: /system.slice/web.service\n",
		" web.service: listening on :80\n",
		" corral: Started web.service.\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}
	// A real process in the cgroup list is drawn in the tree with its cmdline.
	f := testFake()
	f.AddUnit(apiserver.UnitDetail{
		UnitSummary: apiserver.UnitSummary{Name: "self.service", LoadState: "loaded", ActiveState: "active", SubState: "running"},
		MainPID:     os.Getpid(), PIDs: []int{os.Getpid()}, Cgroup: "/system.slice/self.service",
	})
	r = ctl(t, apiservertest.Serve(t, f), "status", "self")
	self := fmt.Sprintf("%d", os.Getpid())
	if !strings.Contains(r.stdout, "Main PID: "+self+" (corralctl.test)") || !strings.Contains(r.stdout, "     CGroup: /system.slice/self.service\n             └─"+self+" ") {
		t.Errorf("status with processes:\n%s", r.stdout)
	}
	r = ctl(t, root, "status", "bad")
	if !strings.Contains(r.stdout, "Main PID: 77 (code=exited, status=1/FAILURE)") {
		t.Errorf("failed status lacks the exit status:\n%s", r.stdout)
	}
}

func TestListUnitsText(t *testing.T) {
	root := apiservertest.Serve(t, testFake())
	r := ctl(t, root, "list-units")
	lines := strings.Split(r.stdout, "\n")
	if r.code != 0 || len(lines) < 4 {
		t.Fatalf("list-units: %+v", r)
	}
	want := []string{
		"  UNIT              LOAD   ACTIVE SUB     DESCRIPTION",
		"● bad.service       loaded failed failed  Broken",
		"  multi-user.target loaded active active  ",
		"  web.service       loaded active running Web server",
	}
	if diff := cmp.Diff(want, lines[:4]); diff != "" {
		t.Errorf("list-units (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.stdout, "3 loaded units listed.") {
		t.Errorf("list-units footer:\n%s", r.stdout)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 6, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"-5m", now.Add(-5 * time.Minute)},
		{"1h ago", now.Add(-time.Hour)},
		{"1h 30min ago", now.Add(-90 * time.Minute)},
		{"2 days ago", now.Add(-48 * time.Hour)},
		{"2025-06-01T10:00:00Z", time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)},
		{"2025-06-01 10:00:00", time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)},
		{"today", time.Date(2025, 6, 7, 0, 0, 0, 0, time.UTC)},
		{"yesterday", time.Date(2025, 6, 6, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseSince(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"soon", "-5 parsecs", "ago"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) succeeded, want an error", bad)
		}
	}
}

func TestLogs(t *testing.T) {
	root := apiservertest.Serve(t, testFake())
	r := ctl(t, root, "logs", "-u", "web", "-n", "1")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, "corral: Started web.service.") {
		t.Errorf("logs -n 1: %+v", r)
	}
	r = ctl(t, root, "logs", "-u", "web", "--since", "2025-01-02T03:04:30Z")
	if r.code != 0 || strings.Contains(r.stdout, "listening") || !strings.Contains(r.stdout, "Started") {
		t.Errorf("logs --since: %+v", r)
	}
	r = ctl(t, root, "-o", "json", "logs", "-u", "web")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], `{"message":"listening on :80"`) {
		t.Errorf("logs json: %+v", r)
	}
	if r := ctl(t, root, "logs", "--since", "whenever"); r.code != 1 || !strings.Contains(r.stderr, "Failed to parse --since") {
		t.Errorf("logs bad since: %+v", r)
	}
}

func TestVersion(t *testing.T) {
	root := apiservertest.Serve(t, testFake())
	r := ctl(t, root, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "corral-agent test") {
		t.Errorf("version: %+v", r)
	}
}
