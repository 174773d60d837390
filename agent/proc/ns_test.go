package proc

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// startInit starts an Init spec (a namespace holder) and kills it at the
// end of the test.
func startInit(t *testing.T, spec *Spec) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, err := (&Spawner{}).Start(ctx, spec)
	if err != nil {
		t.Fatalf("start init: pid %d, %v", pid, err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL); waitPID(t, pid) })
	return pid
}

func nsLink(t *testing.T, pid, typ string) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + pid + "/ns/" + typ)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestInitHoldsNewNamespaces(t *testing.T) {
	host, _ := os.Hostname()
	holder := startInit(t, &Spec{Path: "pod-holder", Init: true, Setsid: true,
		NewNamespaces: []string{"net", "uts", "ipc", "mnt", "pid"}, Hostname: "corral-pod-test"})
	hp := strconv.Itoa(holder)
	for _, typ := range []string{"net", "uts", "ipc", "mnt", "pid"} {
		if nsLink(t, hp, typ) == nsLink(t, "self", typ) {
			t.Errorf("holder shares the %s namespace with the host", typ)
		}
	}
	if h, _ := os.Hostname(); h != host {
		t.Fatalf("the host's name changed to %q", h)
	}
	ns := map[string]string{}
	for _, typ := range []string{"net", "uts", "ipc", "mnt", "pid"} {
		ns[typ] = "/proc/" + hp + "/ns/" + typ
	}
	// A process joining them runs inside the PID namespace (no extra
	// process: the PID Start returns is the program's), sees the pod's
	// hostname, loopback up, and only the pod's processes in its /proc.
	spec := sh(`echo $$; hostname; cat /sys/class/net/lo/operstate; ls /proc | grep -c '^[0-9]'; sleep 0.3 & exit 0`)
	spec.Namespaces = ns
	spec.PrivateMounts = true
	spec.MountProc = true
	out, ws, pid, err := run(t, spec)
	if err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("spawn in the pod: %v, %v, %q", err, ws, out)
	}
	f := strings.Fields(out)
	if len(f) != 4 || f[0] == strconv.Itoa(pid) || f[0] == "1" || f[1] != "corral-pod-test" || f[2] != "unknown" && f[2] != "up" {
		t.Errorf("inside the pod: %q (host pid %d)", out, pid)
	}
	if n, _ := strconv.Atoi(f[3]); n < 2 || n > 5 {
		t.Errorf("the pod's /proc lists %d processes, want its own few", n)
	}
	// The orphaned sleep was re-parented to the holder, which reaps it.
	time.Sleep(600 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for zombies(holder) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("holder %d does not reap its orphans", holder)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Forking into the PID namespace left the spawner's threads in ours.
	for i := 0; i < 4; i++ {
		out, _, _, _ := run(t, sh("readlink /proc/self/ns/pid"))
		if strings.TrimSpace(out) != nsLink(t, "self", "pid") {
			t.Fatalf("a later spawn runs in PID namespace %q", out)
		}
	}
}

// zombies counts the dead, unreaped children of pid.
func zombies(pid int) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}

func TestHostnameNeedsNewUTS(t *testing.T) {
	host, _ := os.Hostname()
	holder := startInit(t, &Spec{Path: "pod-holder", Init: true, NewNamespaces: []string{"ipc", "mnt"}, Hostname: "must-not-be-set"})
	if h, _ := os.Hostname(); h != host {
		os.WriteFile("/proc/sys/kernel/hostname", []byte(host), 0)
		t.Fatalf("hostname without a UTS namespace changed the host's to %q", h)
	}
	if nsLink(t, strconv.Itoa(holder), "net") != nsLink(t, "self", "net") {
		t.Error("holder without a new net namespace left the host's")
	}
}

// openDir is a temp dir that a non-root user may read (t.TempDir's are
// root's only).
func openDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "corral-proc-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestPrivateMounts(t *testing.T) {
	src, dst := openDir(t), openDir(t)
	os.WriteFile(src+"/f", []byte("from src\n"), 0o644)
	fileSrc := openDir(t) + "/hosts"
	os.WriteFile(fileSrc, []byte("10.0.0.1 pod\n"), 0o644)
	fileDst := openDir(t) + "/hosts"
	os.WriteFile(fileDst, []byte("host's\n"), 0o644)
	newDir := openDir(t)
	spec := sh(`cat ` + dst + `/f; cat ` + fileDst + `; touch ` + dst + `/g 2>/dev/null && echo writable; cat ` + newDir + `/sub/f; grep -c " ` + dst + ` " /proc/self/mountinfo`)
	spec.PrivateMounts = true
	spec.Mounts = []Mount{
		{Source: src, Target: dst, ReadOnly: true},
		{Source: fileSrc, Target: fileDst, Propagation: "rslave"},
		{Source: src, Target: newDir + "/sub", Create: "dir"},
	}
	spec.User = "nobody" // mounts happen before privileges are dropped
	out, ws, _, err := run(t, spec)
	if err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("spawn: %v, %v, %q", err, ws, out)
	}
	if want := "from src\n10.0.0.1 pod\nfrom src\n1\n"; out != want {
		t.Errorf("inside = %q, want %q (bind, file bind, read-only, created mount point)", out, want)
	}
	if b, _ := os.ReadFile(fileDst); string(b) != "host's\n" {
		t.Errorf("the host sees %q at %s", b, fileDst)
	}
	if _, err := os.Stat(dst + "/f"); err == nil {
		t.Error("the bind mount is visible on the host")
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), dst) {
		t.Error("the mount propagated to the host's namespace")
	}
}

func TestPrivateMountErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(s *Spec)
		want string
	}{
		{"missing target", func(s *Spec) {
			s.PrivateMounts = true
			s.Mounts = []Mount{{Source: "/tmp", Target: "/nonexistent/x"}}
		}, "mount /tmp on /nonexistent/x"},
		{"mounts without a namespace", func(s *Spec) { s.Mounts = []Mount{{Source: "/tmp", Target: "/mnt"}} }, "mount namespace of the child's own"},
		{"bad propagation", func(s *Spec) {
			s.PrivateMounts = true
			s.Mounts = []Mount{{Source: "/tmp", Target: "/mnt", Propagation: "sideways"}}
		}, "unknown propagation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := sh("true")
			tc.mod(spec)
			_, ws, _, err := run(t, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) || ws.ExitStatus() != ExitNamespace {
				t.Errorf("error = %v, status %d; want %q and %d", err, ws.ExitStatus(), tc.want, ExitNamespace)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	const (
		chown          = 1 << unix.CAP_CHOWN
		kill           = 1 << unix.CAP_KILL
		netBindService = 1 << unix.CAP_NET_BIND_SERVICE
	)
	set := uint64(chown | kill | netBindService)
	tests := []struct {
		name string
		user string
		caps Caps
		want map[string]uint64
	}{
		{"root with a reduced set", "", Caps{Bounding: set, Effective: set, Permitted: set},
			map[string]uint64{"CapBnd": set, "CapEff": set, "CapPrm": set, "CapInh": 0, "CapAmb": 0}},
		{"root with none", "", Caps{}, map[string]uint64{"CapBnd": 0, "CapEff": 0, "CapPrm": 0}},
		{"non-root keeps only ambient", "nobody", Caps{Bounding: set, Effective: set, Permitted: set, Ambient: netBindService},
			map[string]uint64{"CapBnd": set, "CapEff": netBindService, "CapPrm": netBindService, "CapInh": netBindService, "CapAmb": netBindService}},
		{"non-root without ambient", "nobody", Caps{Bounding: set, Effective: set, Permitted: set},
			map[string]uint64{"CapBnd": set, "CapEff": 0, "CapPrm": 0, "CapAmb": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := sh("grep ^Cap /proc/self/status")
			spec.User = tc.user
			spec.Caps = &tc.caps
			out, ws, _, err := run(t, spec)
			if err != nil || ws.ExitStatus() != 0 {
				t.Fatalf("spawn: %v, %v, %q", err, ws, out)
			}
			got := map[string]uint64{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				k, v, _ := strings.Cut(l, ":")
				got[k], _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("%s = %x, want %x (all: %q)", k, got[k], want, out)
				}
			}
		})
	}
}

func TestReadOnlyRootTmpfsAndMasks(t *testing.T) {
	d := openDir(t)
	os.Mkdir(d+"/masked", 0o755)
	os.WriteFile(d+"/masked/secret", []byte("secret\n"), 0o644)
	os.WriteFile(d+"/file", []byte("secret file\n"), 0o644)
	spec := sh(`touch ` + d + `/w 2>/dev/null && echo root-writable; ls ` + d + `/masked | wc -l; cat ` + d + `/file; touch ` + d + `/masked/x 2>/dev/null && echo tmpfs-writable; df -P /dev/shm | tail -1 | awk '{print $2}'`)
	spec.PrivateMounts = true
	spec.ReadOnlyRoot = true
	spec.Mounts = []Mount{
		{Type: "tmpfs", Target: d + "/masked", ReadOnly: true},
		{Source: "/dev/null", Target: d + "/file", ReadOnly: true},
		{Source: "/dev/null", Target: d + "/does-not-exist", Optional: true},
		{Type: "tmpfs", Target: "/dev/shm", Data: "size=1024k"},
	}
	out, ws, _, err := run(t, spec)
	if err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("spawn: %v, %v, %q", err, ws, out)
	}
	if want := "0\n1024\n"; out != want {
		t.Errorf("inside = %q, want %q (read-only root, masked dir and file, a 1 MiB /dev/shm)", out, want)
	}
	if err := os.WriteFile(d+"/w", nil, 0o644); err != nil {
		t.Errorf("the host's / is read-only too: %v", err)
	}
	if _, err := os.Stat(d + "/does-not-exist"); err == nil {
		t.Error("an optional mount created its target")
	}
}
