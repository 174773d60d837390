package unit

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

const lib = "lib/systemd/system/"

func TestLoadTypedService(t *testing.T) {
	l, root := newTestLoader(t, map[string]string{lib + "web.service": `[Unit]
Description=Web %n
Wants=a.service b.service
Wants=
Wants=c.service
After=c.service
ConditionPathExists=!/etc/nope
AssertFileNotEmpty=|/etc/x

[Service]
Type=notify
ExecStartPre=-/bin/mkdir -p %t/web
ExecStart=@/usr/bin/web web --flag "quoted arg" $OPTS \
          --state %S/web
ExecReload=/bin/kill -HUP $MAINPID
Environment="A=1 2" B=x
Environment=C=%i
EnvironmentFile=-/etc/default/web
User=www
UMask=0027
Nice=-5
LimitNOFILE=1024:4096
Restart=on-failure
RestartSec=5min 20s
TimeoutStopSec=infinity
SuccessExitStatus=3 SIGUSR1
KillSignal=SIGINT
CPUQuota=150%
MemoryMax=512M
TasksMax=100
RuntimeDirectory=web
WorkingDirectory=-/srv/web
StandardOutput=append:/var/log/web.log
`})
	u := l.Load("web.service")
	if u.LoadState != LoadLoaded {
		t.Fatalf("LoadState = %s (%s)", u.LoadState, u.LoadError)
	}
	if len(u.Warnings) != 0 {
		t.Errorf("warnings: %v", warnMsgs(u))
	}
	um := uint32(0o27)
	nice := -5
	want := &Service{
		Exec: Exec{
			User:                 "www",
			Environment:          []string{"A=1 2", "B=x", "C="},
			EnvironmentFiles:     []EnvFile{{Path: "/etc/default/web", Optional: true}},
			WorkingDirectory:     "/srv/web",
			WorkingDirOptional:   true,
			UMask:                &um,
			Nice:                 &nice,
			Limits:               []Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1024, Max: 4096}},
			RuntimeDirectory:     []string{"web"},
			RuntimeDirectoryMode: 0o755, StateDirectoryMode: 0o755, LogsDirectoryMode: 0o755,
			RuntimeDirectoryPreserve: "no",
			StandardInput:            "null",
			StandardOutput:           Output{Kind: "append", Path: "/var/log/web.log"},
			StandardError:            Output{Kind: "inherit"},
		},
		Type: Notify, ExitType: "main", GuessMainPID: true,
		ExecStartPre: []Command{{Path: "/bin/mkdir", Args: []string{"/bin/mkdir", "-p", filepath.Join(root, "run/web")}, Flags: IgnoreFailure}},
		ExecStart: []Command{{Path: "/usr/bin/web", Flags: Argv0,
			Args: []string{"web", "--flag", "quoted arg", "$OPTS", "--state", filepath.Join(root, "var/lib/web")}}},
		ExecReload:        []Command{{Path: "/bin/kill", Args: []string{"/bin/kill", "-HUP", "$MAINPID"}}},
		Restart:           RestartOnFailure,
		RestartSec:        5*time.Minute + 20*time.Second,
		SuccessExitStatus: ExitStatusSet{Codes: []int{3}, Signals: []int{10}},
		TimeoutStartSec:   90 * time.Second,
		TimeoutStopSec:    0,
		TimeoutAbortSec:   0,
		KillMode:          KillControlGroup,
		KillSignal:        2, RestartKillSignal: 2, FinalKillSignal: 9, SendSIGKILL: true,
		NotifyAccess: NotifyMain,
		Resources:    Resources{CPUQuotaPerSec: 1500 * time.Millisecond, MemoryMax: 512 << 20, TasksMax: 100},
		Slice:        "system.slice",
	}
	if diff := cmp.Diff(want, u.Service); diff != "" {
		t.Errorf("Service (-want +got)\n%s", diff)
	}
	if u.Description != "Web web.service" {
		t.Errorf("Description = %q", u.Description)
	}
	wantDeps := map[Dep][]string{
		Wants:     {"c.service"},
		After:     {"c.service", "system.slice", "sysinit.target", "basic.target"},
		Requires:  {"system.slice", "sysinit.target"},
		Conflicts: {"shutdown.target"},
		Before:    {"shutdown.target"},
	}
	if diff := cmp.Diff(wantDeps, u.Deps); diff != "" {
		t.Errorf("Deps (-want +got)\n%s", diff)
	}
	wantCond := []Condition{{Kind: "PathExists", Negate: true, Value: "/etc/nope"}, {Kind: "FileNotEmpty", Assert: true, Trigger: true, Value: "/etc/x"}}
	if diff := cmp.Diff(wantCond, u.Conditions); diff != "" {
		t.Errorf("Conditions (-want +got)\n%s", diff)
	}
}

func TestLoadStates(t *testing.T) {
	good := "[Service]\nExecStart=/bin/true\n"
	l, root := newTestLoader(t, map[string]string{
		lib + "good.service":               good,
		lib + "syntax.service":             "[Service]\nExecStart=/bin/true\nthis is not valid\n",
		lib + "early.service":              "ExecStart=/bin/true\n",
		lib + "header.service":             "[Service\nExecStart=/bin/true\n",
		lib + "quote.service":              "[Service]\nExecStart=/bin/echo \"open\n",
		lib + "noexec.service":             "[Unit]\nDescription=x\n[Service]\nType=simple\n",
		lib + "two.service":                "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n",
		lib + "tworeset.service":           "[Service]\nExecStart=/bin/a\nExecStart=\nExecStart=/bin/b\n",
		lib + "oneshot.service":            "[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n",
		lib + "badtype.service":            "[Service]\nType=bogus\nExecStart=/bin/true\n",
		lib + "relwd.service":              "[Service]\nExecStart=/bin/true\nWorkingDirectory=srv\n",
		lib + "relexec.service":            "[Service]\nExecStart=bin/true\n",
		lib + "nolisten.socket":            "[Socket]\nAccept=no\n",
		lib + "masked.service":             good,
		lib + "empty.service":              "",
		"etc/corral/system/masked.service": "-> /dev/null",
	})
	tests := []struct {
		name  string
		state LoadState
		err   string // substring of LoadError
	}{
		{"good.service", LoadLoaded, ""},
		{"syntax.service", LoadError, lib + "syntax.service:3: line is neither"},
		{"early.service", LoadError, lib + "early.service:1: assignment outside of any section"},
		{"header.service", LoadError, lib + "header.service:1: unterminated"},
		{"quote.service", LoadError, lib + "quote.service:2: ExecStart=: unterminated quoted string"},
		{"noexec.service", LoadBadSetting, lib + "noexec.service:4: service has no ExecStart= setting"},
		{"two.service", LoadBadSetting, lib + "two.service:3: service has more than one ExecStart="},
		{"tworeset.service", LoadLoaded, ""},
		{"oneshot.service", LoadLoaded, ""},
		{"badtype.service", LoadBadSetting, lib + `badtype.service:2: Type=: unknown service type "bogus"`},
		{"relwd.service", LoadBadSetting, lib + `relwd.service:3: WorkingDirectory=: path "srv" is not absolute`},
		{"relexec.service", LoadBadSetting, lib + `relexec.service:2: ExecStart=: executable path "bin/true" is not absolute`},
		{"nolisten.socket", LoadBadSetting, "socket unit has no Listen*= setting"},
		{"masked.service", LoadMasked, "masked"},
		{"empty.service", LoadMasked, "masked"},
		{"missing.service", LoadNotFound, "not found"},
		{"bad name", LoadError, "invalid unit name"},
		{"tmpl@.service", LoadError, "template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := l.Load(tt.name)
			if u == nil {
				t.Fatal("Load returned nil")
			}
			if u.LoadState != tt.state {
				t.Fatalf("LoadState = %s (%s), want %s", u.LoadState, u.LoadError, tt.state)
			}
			if !strings.Contains(u.LoadError, strings.ReplaceAll(tt.err, lib, filepath.Join(root, lib)+"/")) {
				t.Errorf("LoadError = %q, want it to contain %q", u.LoadError, tt.err)
			}
		})
	}
}

func TestLoadWarnings(t *testing.T) {
	l, root := newTestLoader(t, map[string]string{lib + "w.service": `[Unit]
Description=w
Frobnicate=yes
X-Custom=ignored silently
[Service]
ExecStart=/bin/true
Restart=sometimes
ProtectKernelTunables=yes
ExecStartPost=!!/bin/true
Nice=99
Environment=FOO=%Z
[X-Vendor]
Anything=goes
[Timer]
OnCalendar=daily
`})
	u := l.Load("w.service")
	if u.LoadState != LoadLoaded {
		t.Fatalf("LoadState = %s (%s)", u.LoadState, u.LoadError)
	}
	f := filepath.Join(root, lib+"w.service")
	want := []string{
		f + ":3: unknown directive Frobnicate= in [Unit]; ignored",
		f + `:7: invalid value for Restart=: unknown restart policy "sometimes"; ignored`,
		f + ":8: ProtectKernelTunables= is not supported by Corral; ignored",
		f + ":9: '!!' prefix is not supported; command runs with full privileges",
		f + `:10: invalid value for Nice=: nice value "99" out of range -20..19; ignored`,
		f + ":11: Environment=: unknown specifier %Z left in place",
		f + ":15: [Timer] OnCalendar= is not supported for service units; ignored",
	}
	if diff := cmp.Diff(want, warnMsgs(u)); diff != "" {
		t.Errorf("warnings (-want +got)\n%s", diff)
	}
	if u.Service.Restart != RestartNo || u.Service.Nice != nil {
		t.Errorf("invalid values were applied: Restart=%s Nice=%v", u.Service.Restart, u.Service.Nice)
	}
}

func TestLoadTemplatesAliasesBuiltins(t *testing.T) {
	l, root := newTestLoader(t, map[string]string{
		lib + "getty@.service":              "[Service]\nExecStart=/sbin/agetty %I\nEnvironment=TTY=/dev/%I\n",
		lib + "real.service":                "[Service]\nExecStart=/bin/real\n",
		lib + "nick.service":                "-> real.service",
		"etc/corral/system/other.service":   "-> " + filepath.Join("/", lib, "real.service"),
		lib + "tty@.service":                "-> getty@.service",
		lib + "graphical.target":            "[Unit]\nDescription=From disk\n",
		"etc/systemd/system/default.target": "-> " + "/lib/systemd/system/graphical.target",
	})
	_ = root
	u := l.Load("getty@tty1.service")
	if u.LoadState != LoadLoaded || u.Service.ExecStart[0].Args[1] != "tty1" || u.Service.Environment[0] != "TTY=/dev/tty1" {
		t.Fatalf("instance: %s %s %+v", u.LoadState, u.LoadError, u.Service)
	}
	if u.Path != filepath.Join(root, lib, "getty@.service") {
		t.Errorf("instance Path = %s", u.Path)
	}
	if diff := cmp.Diff([]string{"tty@tty1.service"}, u.Aliases); diff != "" {
		t.Errorf("instance aliases (-want +got)\n%s", diff)
	}
	a := l.Load("nick.service")
	if a.Name != "real.service" || a.LoadState != LoadLoaded {
		t.Fatalf("alias loaded as %s (%s)", a.Name, a.LoadState)
	}
	if diff := cmp.Diff([]string{"nick.service", "other.service"}, a.Aliases); diff != "" {
		t.Errorf("aliases (-want +got)\n%s", diff)
	}
	if got := l.Canonical("nick.service"); got != "real.service" {
		t.Errorf("Canonical(nick) = %s", got)
	}
	if got := l.Canonical("tty@x.service"); got != "getty@x.service" {
		t.Errorf("Canonical(tty@x) = %s", got)
	}
	// default.target: a file on the path wins over the built-in alias.
	d := l.Load("default.target")
	if d.Name != "graphical.target" || d.Description != "From disk" {
		t.Errorf("default.target → %s %q", d.Name, d.Description)
	}
	m := l.Load("multi-user.target")
	if m.LoadState != LoadLoaded || !strings.HasPrefix(m.Path, builtinPrefix) || !m.AllowIsolate {
		t.Errorf("builtin multi-user.target: %s %s %v", m.LoadState, m.Path, m.AllowIsolate)
	}
	l2, _ := newTestLoader(t, nil)
	d2 := l2.Load("default.target")
	if d2.Name != "multi-user.target" || !slices.Contains(d2.Aliases, "default.target") {
		t.Errorf("builtin default.target → %s aliases %v", d2.Name, d2.Aliases)
	}
	for _, n := range []string{"-.slice", "system.slice", "sysinit.target", "basic.target", "shutdown.target",
		"sockets.target", "network-online.target", "local-fs.target", "remote-fs.target", "timers.target",
		"paths.target", "rescue.target", "emergency.target", "network.target", "graphical.target"} {
		if u := l2.Load(n); u.LoadState != LoadLoaded || len(u.Warnings) > 0 {
			t.Errorf("builtin %s: %s %s %v", n, u.LoadState, u.LoadError, warnMsgs(u))
		}
	}
}

func TestDropIns(t *testing.T) {
	l, root := newTestLoader(t, map[string]string{
		lib + "a-b-c.service":                                "[Service]\nExecStart=/bin/lib\nEnvironment=X=lib\n",
		lib + "a-b-c.service.d/10-x.conf":                    "[Service]\nEnvironment=X=libdrop\n",
		"etc/systemd/system/a-b-c.service.d/10-x.conf":       "[Service]\nEnvironment=X=etcdrop\n",
		"etc/systemd/system/a-b-c.service.d/30-z.conf":       "[Service]\nExecStart=\nExecStart=/bin/etc\n",
		lib + "a-b-.service.d/20-y.conf":                     "[Unit]\nDescription=prefix ab\n",
		lib + "a-.service.d/25-y.conf":                       "[Unit]\nDocumentation=man:a\n",
		lib + "service.d/05-all.conf":                        "[Service]\nTimeoutStopSec=7\n",
		lib + "service.d/notconf.txt":                        "[Service]\nTimeoutStopSec=8\n",
		lib + "t@.service":                                   "[Service]\nExecStart=/bin/t %i\n",
		lib + "t@.service.d/inst.conf":                       "[Unit]\nDescription=tmpl %i\n",
		lib + "t@one.service.d/over.conf":                    "[Unit]\nDescription=only one\n",
		lib + "a-b-c.service.wants/w.service":                "-> /dev/null",
		"etc/corral/system/a-b-c.service.requires/r.service": "-> /lib/systemd/system/r.service",
		"etc/corral/system/t@.service.wants/g@.service":      "-> /lib/systemd/system/g@.service",
	})
	u := l.Load("a-b-c.service")
	if u.LoadState != LoadLoaded {
		t.Fatalf("%s %s", u.LoadState, u.LoadError)
	}
	etc := filepath.Join(root, "etc/systemd/system")
	libd := filepath.Join(root, lib)
	wantDrop := []string{libd + "/service.d/05-all.conf", etc + "/a-b-c.service.d/10-x.conf",
		libd + "/a-b-.service.d/20-y.conf", libd + "/a-.service.d/25-y.conf", etc + "/a-b-c.service.d/30-z.conf"}
	if diff := cmp.Diff(wantDrop, u.DropIns); diff != "" {
		t.Errorf("DropIns (-want +got)\n%s", diff)
	}
	if diff := cmp.Diff([]string{"X=lib", "X=etcdrop"}, u.Service.Environment); diff != "" {
		t.Errorf("Environment (-want +got)\n%s", diff)
	}
	if u.Service.ExecStart[0].Path != "/bin/etc" || len(u.Service.ExecStart) != 1 {
		t.Errorf("ExecStart = %+v", u.Service.ExecStart)
	}
	if u.Description != "prefix ab" || u.Service.TimeoutStopSec != 7*time.Second || u.Documentation[0] != "man:a" {
		t.Errorf("Description %q TimeoutStopSec %v Doc %v", u.Description, u.Service.TimeoutStopSec, u.Documentation)
	}
	if !slices.Contains(u.Deps[Wants], "w.service") || !slices.Contains(u.Deps[Requires], "r.service") {
		t.Errorf("link deps: %v", u.Deps)
	}
	one := l.Load("t@one.service")
	two := l.Load("t@two.service")
	if one.Description != "only one" || two.Description != "tmpl two" {
		t.Errorf("instance drop-ins: %q %q", one.Description, two.Description)
	}
	if !slices.Contains(two.Deps[Wants], "g@two.service") {
		t.Errorf("template wants not instantiated: %v", two.Deps[Wants])
	}
}

func TestExtraDirsFirst(t *testing.T) {
	root := t.TempDir()
	extra := filepath.Join(root, "extra")
	writeTree(t, root, map[string]string{
		"extra/x.service":             "[Unit]\nDescription=extra\n[Service]\nExecStart=/bin/true\n",
		"etc/corral/system/x.service": "[Unit]\nDescription=etc\n[Service]\nExecStart=/bin/true\n",
		lib + "y.service":             "[Unit]\nDescription=lib\n[Service]\nExecStart=/bin/true\n",
		"usr/" + lib + "y.service":    "[Unit]\nDescription=usr\n[Service]\nExecStart=/bin/true\n",
		lib + "z@.service":            "[Service]\nExecStart=/bin/true\n",
	})
	l := NewLoader(root, extra)
	if d := l.Load("x.service").Description; d != "extra" {
		t.Errorf("x.service from %q", d)
	}
	if d := l.Load("y.service").Description; d != "lib" {
		t.Errorf("y.service from %q", d)
	}
	names, err := l.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"x.service", "y.service", "multi-user.target", "default.target", "-.slice"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s", want)
		}
	}
	if slices.Contains(names, "z@.service") {
		t.Error("Names() lists a bare template")
	}
}

func TestImplicitAndInverseDeps(t *testing.T) {
	l, _ := newTestLoader(t, map[string]string{
		lib + "app.socket":     "[Socket]\nListenStream=/run/app.sock\n[Install]\nWantedBy=sockets.target\n",
		lib + "app.service":    "[Unit]\nRequires=db.service\n[Service]\nExecStart=/bin/app\nSlice=apps-web.slice\n",
		lib + "db.service":     "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/db\n",
		lib + "apps-web.slice": "[Slice]\nMemoryMax=1G\nCPUQuota=50%\n",
		lib + "app.target":     "[Unit]\nWants=app.service db.service\n",
		lib + "nick.service":   "-> app.service",
		lib + "user.service":   "[Unit]\nWants=nick.service\n[Service]\nExecStart=/bin/u\n",
	})
	var units []*Unit
	for _, n := range []string{"app.socket", "app.service", "db.service", "apps-web.slice", "apps.slice", "app.target",
		"user.service", "sysinit.target", "shutdown.target", "sockets.target"} {
		u := l.Load(n)
		if u.LoadState != LoadLoaded {
			t.Fatalf("%s: %s %s", n, u.LoadState, u.LoadError)
		}
		units = append(units, u)
	}
	sock, svc, db, slice, parent, tgt, user := units[0], units[1], units[2], units[3], units[4], units[5], units[6]
	check := func(u *Unit, d Dep, want ...string) {
		t.Helper()
		got := slices.Clone(u.Deps[d])
		slices.Sort(got)
		slices.Sort(want)
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s %s (-want +got)\n%s", u.Name, d, diff)
		}
	}
	check(sock, Triggers, "app.service")
	check(sock, Before, "app.service", "sockets.target", "shutdown.target")
	check(sock, Requires, "sysinit.target", "system.slice")
	check(svc, Requires, "db.service", "apps-web.slice", "sysinit.target")
	check(slice, Requires, "apps.slice")
	check(parent, Requires, "-.slice")
	if slice.Slice.Resources.MemoryMax != 1<<30 || slice.Slice.Resources.CPUQuotaPerSec != 500*time.Millisecond {
		t.Errorf("slice resources %+v", slice.Slice.Resources)
	}
	check(db, Requires, "system.slice") // the slice is not a default dependency
	check(tgt, After)                   // before FillInverse: target ordering needs the other units
	FillInverse(units)
	FillInverse(units) // idempotent
	check(svc, TriggeredBy, "app.socket")
	check(svc, After, "app.socket", "apps-web.slice", "sysinit.target", "basic.target") // Requires= does not order
	check(svc, WantedBy, "app.target", "user.service")
	check(db, RequiredBy, "app.service")
	check(db, WantedBy, "app.target")
	check(tgt, After, "app.service")  // db.service has DefaultDependencies=no
	check(user, Wants, "app.service") // alias rewritten to the canonical name
	check(units[7], RequiredBy, "app.socket", "app.service", "user.service")
	check(units[8], ConflictedBy, "app.socket", "app.service", "user.service", "apps-web.slice", "apps.slice", "app.target", "sockets.target")
}

func TestParseStringTransient(t *testing.T) {
	l, _ := newTestLoader(t, nil)
	u := l.ParseString("ctr-1.service", "[Unit]\nDescription=container\n[Service]\nExecStart=/bin/sleep infinity\nSlice=pod-1.slice\n")
	if u.LoadState != LoadLoaded || !u.Transient || u.Service.Slice != "pod-1.slice" {
		t.Fatalf("%s %s %+v", u.LoadState, u.LoadError, u)
	}
	bad := l.ParseString("ctr-2.service", "[Service]\n")
	if bad.LoadState != LoadBadSetting {
		t.Errorf("empty transient: %s", bad.LoadState)
	}
}

// Defaults that depend on other settings, as systemd.service(5) and
// systemd.exec(5) describe them.
func TestDerivedDefaults(t *testing.T) {
	l := NewLoader(t.TempDir())
	cases := []struct {
		name, text   string
		startTimeout time.Duration
		stdout       string
	}{
		{"a.service", "[Service]\nExecStart=/bin/true\n", 90 * time.Second, "journal"},
		{"b.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n", 0, "journal"},
		{"c.service", "[Service]\nType=oneshot\nTimeoutStartSec=5\nExecStart=/bin/true\n", 5 * time.Second, "journal"},
		{"d.service", "[Service]\nExecStart=/bin/cat\nStandardInput=socket\n", 90 * time.Second, "inherit"},
		{"e.service", "[Service]\nExecStart=/bin/cat\nStandardInput=socket\nStandardOutput=null\n", 90 * time.Second, "null"},
	}
	for _, c := range cases {
		u := l.ParseString(c.name, c.text)
		if u.LoadState != LoadLoaded {
			t.Fatalf("%s: %s %s", c.name, u.LoadState, u.LoadError)
		}
		if got := u.Service.TimeoutStartSec; got != c.startTimeout {
			t.Errorf("%s: TimeoutStartSec=%v, want %v", c.name, got, c.startTimeout)
		}
		if got := u.Service.StandardOutput.Kind; got != c.stdout {
			t.Errorf("%s: StandardOutput=%q, want %q", c.name, got, c.stdout)
		}
	}
}
