// Command pid1agent stands in for corral-agent when the PID-1 test boots
// corral in a PID namespace. It is static (no sh, no sleep in the test
// root), so it plays every role itself, chosen by argv[1]:
//
//	(none)         the core: records what it sees in /state, then polls /cmd
//	service        a long-running service (setsid; dies on SIGTERM)
//	orphan-parent  forks "sleep" and exits at once, orphaning it
//	sleep          sleeps 200 ms
//
// As the core it writes /state/starts (its PID, appended), /state/args,
// /state/hostname, /state/lo (flags of lo), /state/mounts and, on the
// first start, starts a service (/state/service.pid). Commands are files
// the test creates in /cmd: "orphans" (fork 200 orphan-parents, then write
// /state/orphans-done), "reboot" (run /usr/sbin/reboot, the multi-call
// name). SIGTERM appends "TERM" to /state/events and exits 0.
package main

import (
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "service":
			for {
				time.Sleep(time.Hour)
			}
		case "orphan-parent":
			c := exec.Command("/proc/self/exe", "sleep")
			c.Start()
			os.Exit(0)
		case "sleep":
			time.Sleep(200 * time.Millisecond)
			os.Exit(0)
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)

	appendLine("/state/starts", strconv.Itoa(os.Getpid()))
	os.WriteFile("/state/args", []byte(strings.Join(os.Args, "\n")+"\n"), 0o644)
	h, _ := os.Hostname()
	os.WriteFile("/state/hostname", []byte(h), 0o644)
	if lo, err := net.InterfaceByName("lo"); err == nil {
		os.WriteFile("/state/lo", []byte(lo.Flags.String()), 0o644)
	}
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		os.WriteFile("/state/mounts", b, 0o644)
	}
	if _, err := os.Stat("/state/service.pid"); err != nil {
		c := exec.Command("/proc/self/exe", "service")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if c.Start() == nil {
			os.WriteFile("/state/service.pid", []byte(strconv.Itoa(c.Process.Pid)), 0o644)
			go c.Wait()
		}
	}
	os.WriteFile("/state/ready", nil, 0o644)

	tick := time.NewTicker(20 * time.Millisecond)
	for {
		select {
		case <-term:
			appendLine("/state/events", "TERM")
			os.Exit(0)
		case <-tick.C:
		}
		if os.Remove("/cmd/orphans") == nil {
			for range 200 {
				exec.Command("/proc/self/exe", "orphan-parent").Run()
			}
			os.WriteFile("/state/orphans-done", nil, 0o644)
		}
		if os.Remove("/cmd/reboot") == nil {
			out, err := exec.Command("/usr/sbin/reboot").CombinedOutput()
			appendLine("/state/events", "reboot: "+string(out)+errString(err))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func appendLine(path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	f.WriteString(s + "\n")
	f.Close()
}
