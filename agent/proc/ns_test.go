package proc

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// holder starts a process in new namespaces of the given types (unshare
// flags) and returns its PID once it is inside them.
func holder(t *testing.T, flags ...string) int {
	t.Helper()
	cmd := exec.Command("unshare", append(flags, "sleep", "300")...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	self, _ := os.Readlink("/proc/self/ns/net")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
		got, _ := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net")
		if strings.TrimSpace(string(b)) == "sleep" && got != self {
			return cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("holder %d never entered its namespaces", cmd.Process.Pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSpawnJoinsNamespaces(t *testing.T) {
	pid := holder(t, "--net", "--uts", "--ipc", "--mount")
	types := []string{"net", "uts", "ipc", "mnt"}
	ns := map[string]string{}
	var want []string
	for _, k := range types {
		p := "/proc/" + strconv.Itoa(pid) + "/ns/" + k
		ns[k] = p
		l, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, l)
	}
	spec := sh("for n in net uts ipc mnt; do readlink /proc/self/ns/$n; done")
	spec.Namespaces = ns
	spec.User = "nobody" // setns happens before privileges are dropped
	out, ws, _, err := run(t, spec)
	if err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("spawn: %v, status %v, output %q", err, ws, out)
	}
	if got := strings.Fields(out); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("namespaces of the child = %v, want the holder's %v", got, want)
	}
}

func TestSpawnNamespaceErrors(t *testing.T) {
	tests := []struct {
		name string
		ns   map[string]string
		want string
	}{
		{"unknown type", map[string]string{"time2": "/proc/self/ns/net"}, "namespace time2: unknown type"},
		{"missing file", map[string]string{"net": "/nonexistent/ns/net"}, "namespace net /nonexistent/ns/net"},
		{"wrong kind of namespace", map[string]string{"net": "/proc/self/ns/uts"}, "setns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := sh("true")
			spec.Namespaces = tc.ns
			_, ws, _, err := run(t, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
			if ws.ExitStatus() != ExitNamespace {
				t.Errorf("exit status %d, want %d (NAMESPACE)", ws.ExitStatus(), ExitNamespace)
			}
		})
	}
}
