package seccomp

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/proc"
)

func TestMain(m *testing.M) {
	proc.MaybeTrampoline()
	os.Exit(m.Run())
}

// run spawns sh -c script under filter and returns its output and exit
// status.
func run(t *testing.T, filter proc.Filter, newNS []string, script string) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sp := &proc.Spec{Path: "/bin/sh", Argv: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin", "LC_ALL=C"},
		Stdout: w, Stderr: w, Seccomp: filter, NewNamespaces: newNS}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pid, err := (&proc.Spawner{}).Start(ctx, sp)
	w.Close()
	if pid <= 0 || err != nil {
		t.Fatalf("spawn: pid %d, %v", pid, err)
	}
	out, _ := io.ReadAll(r)
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	return string(out), ws.ExitStatus()
}

func compile(t *testing.T, js string, caps ...string) proc.Filter {
	t.Helper()
	p, err := Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Compile(p, func(c string) bool { return strings.Contains(strings.Join(caps, ","), c) })
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Profiles as critest and kubelet write them, checked on real system calls
// (chmod's mode is fchmodat's third argument) in a scratch directory.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	const denyChmod = `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat","fchmodat2"],"action":"SCMP_ACT_ERRNO"%s}]}`
	arg := func(a string) string { return fmt.Sprintf(denyChmod, `,"args":[`+a+`]`) }
	tests := []struct {
		name    string
		profile string
		allowed []string // chmod modes that must work
		denied  []string
	}{
		{"no args", fmt.Sprintf(denyChmod, ""), nil, []string{"644"}},
		{"EQ", arg(`{"index":2,"value":256,"op":"SCMP_CMP_EQ"}`), []string{"644", "600"}, []string{"400"}},
		{"NE", arg(`{"index":2,"value":420,"op":"SCMP_CMP_NE"}`), []string{"644"}, []string{"600"}},
		{"GT", arg(`{"index":2,"value":448,"op":"SCMP_CMP_GT"}`), []string{"700", "600"}, []string{"4755"}},
		{"GE", arg(`{"index":2,"value":448,"op":"SCMP_CMP_GE"}`), []string{"600"}, []string{"700"}},
		{"LT", arg(`{"index":2,"value":384,"op":"SCMP_CMP_LT"}`), []string{"600", "644"}, []string{"400"}},
		{"LE", arg(`{"index":2,"value":384,"op":"SCMP_CMP_LE"}`), []string{"644"}, []string{"600"}},
		{"MASKED_EQ", arg(`{"index":2,"value":2048,"valueTwo":2048,"op":"SCMP_CMP_MASKED_EQ"}`), []string{"755"}, []string{"4755"}},
		{"caps include", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["fchmodat","chmod","fchmodat2"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_BOOT"]}}]}`, []string{"644"}, nil},
		{"caps exclude", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["fchmodat","chmod","fchmodat2"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_SYS_BOOT"]}}]}`, nil, []string{"644"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			filter := compile(t, tc.profile, "SYS_ADMIN")
			for _, m := range tc.allowed {
				if out, code := run(t, filter, nil, "chmod "+m+" "+f); code != 0 {
					t.Errorf("chmod %s: exit %d, %q; want it allowed", m, code, out)
				}
			}
			for _, m := range tc.denied {
				out, code := run(t, filter, nil, "chmod "+m+" "+f)
				if code == 0 || !strings.Contains(out, "Operation not permitted") {
					t.Errorf("chmod %s: exit %d, %q; want EPERM", m, code, out)
				}
			}
		})
	}
}

func TestRuntimeDefault(t *testing.T) {
	f, err := Compile(RuntimeDefault(), func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	out, code := run(t, f, []string{"uts"}, "grep Seccomp: /proc/self/status; hostname x 2>&1 || echo denied; ls / >/dev/null && echo works")
	if code != 0 || !strings.Contains(out, "Seccomp:\t2") || !strings.Contains(out, "denied") || !strings.Contains(out, "works") {
		t.Errorf("RuntimeDefault without SYS_ADMIN: exit %d, %q; want filter mode 2, sethostname denied, ls working", code, out)
	}
	f, err = Compile(RuntimeDefault(), func(c string) bool { return c == "SYS_ADMIN" })
	if err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, f, []string{"uts"}, "hostname x && hostname"); code != 0 || out != "x\n" {
		t.Errorf("RuntimeDefault with SYS_ADMIN: exit %d, %q; want sethostname allowed", code, out)
	}
	if out, code := run(t, nil, nil, "grep Seccomp: /proc/self/status"); code != 0 || !strings.Contains(out, "Seccomp:\t0") {
		t.Errorf("no filter: %q", out)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, js := range []string{
		`{}`,
		`{"defaultAction":"SCMP_ACT_NOTIFY"}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_AARCH64"]}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"op":"SCMP_CMP_EQ"}]}]}`,
		`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"op":"SCMP_CMP_BOGUS"}]}]}`,
	} {
		p, err := Parse([]byte(js))
		if err == nil {
			_, err = Compile(p, nil)
		}
		if err == nil {
			t.Errorf("%s: compiled", js)
		}
	}
}
