package service

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"corral.io/corral/agent/notify"
	"corral.io/corral/agent/proc"
)

// helperEnv selects what the test binary does when a service runs it.
const helperEnv = "CORRAL_SERVICE_HELPER"

func TestMain(m *testing.M) {
	proc.MaybeTrampoline()
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		os.Exit(0)
	}
	// The shared reaper of the integration tests lives as long as the
	// process; everything else a Service starts must be gone.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("corral.io/corral/agent/reaper.(*Reaper).Run"))
}

// runHelper is the service side of the integration tests.
func runHelper(mode string) {
	switch mode {
	case "notify":
		if err := notify.Send(os.Getenv("NOTIFY_SOCKET"), "READY=1\nSTATUS=up"); err != nil {
			os.Exit(2)
		}
		time.Sleep(time.Hour)
	case "fork":
		// A classic daemon: the start process starts a detached child,
		// which writes its PID file, and exits 0.
		self, _ := os.Executable()
		c := exec.Command(self)
		c.Env = append(os.Environ(), helperEnv+"=daemon")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			os.Exit(3)
		}
		// The daemon writes its own PID file; the start process must not
		// wait for it (the daemon re-parents to the subreaper).
		os.Exit(0)
	case "daemon":
		_ = os.WriteFile(os.Getenv("PIDFILE"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
		time.Sleep(time.Hour)
	}
}
