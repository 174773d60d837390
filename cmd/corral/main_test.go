package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeps enforces the rule that makes bin/corral small: it may link only
// the standard library, golang.org/x/sys and Corral packages (which, being
// in the same dependency list, are held to the same rule).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.Standard}} {{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var n int
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		std, path, _ := strings.Cut(l, " ")
		n++
		switch {
		case std == "true":
		case path == "golang.org/x/sys" || strings.HasPrefix(path, "golang.org/x/sys/"):
		case path == "corral.io/corral" || strings.HasPrefix(path, "corral.io/corral/"):
		default:
			t.Errorf("bin/corral depends on %s; only the standard library, golang.org/x/sys and Corral packages are allowed", path)
		}
	}
	if n < 10 {
		t.Fatalf("go list returned only %d packages; the check would be vacuous:\n%s", n, out)
	}
	if !strings.Contains(string(out), "false corral.io/corral/sysinit") {
		t.Errorf("go list output does not include sysinit; is the check looking at the right package?\n%s", out)
	}
}

// buildCorral builds this command into a temp dir and returns the dir.
func buildCorral(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "corral"), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func TestAgentExecsSiblingBinary(t *testing.T) {
	dir := buildCorral(t)
	script := "#!/bin/sh\necho \"$0|$*\"\n"
	if err := os.WriteFile(filepath.Join(dir, "corral-agent"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(dir, "corral"), "agent", "--root", "/x", "two words").Output()
	if err != nil {
		t.Fatalf("corral agent: %v", err)
	}
	want := filepath.Join(dir, "corral-agent") + "|--root /x two words\n"
	if string(out) != want {
		t.Errorf("corral agent ran %q, want %q", out, want)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := buildCorral(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage:"},
		{"unknown command", []string{"frob"}, "unknown command frob"},
		{"init without root", []string{"init"}, "--root is required"},
		{"bad log level", []string{"init", "--root", dir, "--log-level", "loud"}, "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(filepath.Join(dir, "corral"), tt.args...).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Errorf("exit: %v, want status 2", err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output %q does not contain %q", out, tt.want)
			}
		})
	}
}
