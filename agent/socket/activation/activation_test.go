package activation

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// report is what the re-executed test binary tells the parent about what
// Files returned in it.
type report struct {
	N        int
	Names    []string
	Err      string
	Cloexec  []bool
	EnvLeft  []string
	Contents []string
}

func TestMain(m *testing.M) {
	switch os.Getenv("ACTIVATION_HELPER") {
	case "":
	case "listeners":
		os.Exit(listenersChild())
	default:
		os.Exit(child())
	}
	os.Exit(m.Run())
}

func child() int {
	if os.Getenv("ACTIVATION_SET_PID") == "self" {
		os.Setenv("LISTEN_PID", fmt.Sprint(os.Getpid()))
	}
	files, err := Files(os.Getenv("ACTIVATION_UNSET") != "")
	var r report
	r.N = len(files)
	if err != nil {
		r.Err = err.Error()
	}
	for _, f := range files {
		r.Names = append(r.Names, f.Name())
		flags, _ := unix.FcntlInt(uintptr(3+len(r.Cloexec)), unix.F_GETFD, 0)
		r.Cloexec = append(r.Cloexec, flags&unix.FD_CLOEXEC != 0)
		buf := make([]byte, 16)
		n, _ := f.Read(buf)
		r.Contents = append(r.Contents, string(buf[:n]))
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(k); ok {
			r.EnvLeft = append(r.EnvLeft, k)
		}
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// run re-executes the test binary with two pipes as fds 3 and 4 ("a" and
// "b" waiting in them) and env, and decodes its report.
func run(t *testing.T, env ...string) report {
	t.Helper()
	var extra []*os.File
	for _, s := range []string{"a", "b"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString(s)
		w.Close()
		defer r.Close()
		extra = append(extra, r)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ACTIVATION_HELPER=1", "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	cmd.ExtraFiles = extra
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return r
}

func TestFiles(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		n       int
		names   string
		err     string
		envLeft string
	}{
		{name: "passed", env: []string{"ACTIVATION_SET_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES=web:admin", "ACTIVATION_UNSET=1"}, n: 2, names: "web,admin"},
		{name: "no names", env: []string{"ACTIVATION_SET_PID=self", "LISTEN_FDS=1"}, n: 1, names: "unknown", envLeft: "LISTEN_PID,LISTEN_FDS"},
		{name: "other pid", env: []string{"LISTEN_PID=1", "LISTEN_FDS=2", "ACTIVATION_UNSET=1"}},
		{name: "other pid keeps env", env: []string{"LISTEN_PID=1", "LISTEN_FDS=2"}, envLeft: "LISTEN_PID,LISTEN_FDS"},
		{name: "no pid", env: []string{"LISTEN_FDS=2"}, envLeft: "LISTEN_FDS"},
		{name: "bad fds", env: []string{"ACTIVATION_SET_PID=self", "LISTEN_FDS=x", "ACTIVATION_UNSET=1"}, err: "bad LISTEN_FDS"},
		{name: "bad pid", env: []string{"LISTEN_PID=x", "LISTEN_FDS=1"}, err: "bad LISTEN_PID", envLeft: "LISTEN_PID,LISTEN_FDS"},
		{name: "names mismatch", env: []string{"ACTIVATION_SET_PID=self", "LISTEN_FDS=2", "LISTEN_FDNAMES=one"}, err: "1 names for 2 fds", envLeft: "LISTEN_PID,LISTEN_FDS,LISTEN_FDNAMES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.env...)
			if r.N != tt.n || strings.Join(r.Names, ",") != tt.names {
				t.Errorf("got %d files %v, want %d %q", r.N, r.Names, tt.n, tt.names)
			}
			if (tt.err == "") != (r.Err == "") || !strings.Contains(r.Err, tt.err) {
				t.Errorf("error %q, want %q", r.Err, tt.err)
			}
			if got := strings.Join(r.EnvLeft, ","); got != tt.envLeft {
				t.Errorf("env left %q, want %q", got, tt.envLeft)
			}
			want := []string{"a", "b"}[:tt.n]
			for i := range r.Contents {
				if r.Contents[i] != want[i] || !r.Cloexec[i] {
					t.Errorf("fd %d: read %q cloexec %v, want %q and cloexec", 3+i, r.Contents[i], r.Cloexec[i], want[i])
				}
			}
		})
	}
}
