// Command fakeagent stands in for corral-agent in the sysinit tests. It is
// driven by files in the directory given as --root:
//
//	starts      one line "<pid>" appended at every start
//	args        its argv, one per line (overwritten at every start)
//	crash       if present: exit 1 at once (crash loop)
//	orphan      if present: fork `sh -c 'sleep 1 & echo $! >orphan.pid'`, so a short-lived
//	            orphan re-parents to the supervisor
//	linger      if present: fork `setsid sleep 1000` (pid in linger.pid) and a detached
//	            `sh -c 'sleep 1000 & echo $! >linger2.pid; wait'` that are left running on SIGTERM
//	ignoreterm  if present: ignore SIGTERM
//	orphan7     if present: fork a short-lived orphan that exits with status 7 (pid in orphan7.pid)
//	records     written: one line "<agent pid> <pid> <start time> <wait status>" per exit record
//	            read from --exit-records-fd
//
// On SIGTERM it appends "TERM" to events and exits 0; on SIGHUP it appends "HUP".
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var root string
	recFD := -1
	for i, a := range os.Args {
		if a == "--root" && i+1 < len(os.Args) {
			root = os.Args[i+1]
		}
		if a == "--exit-records-fd" && i+1 < len(os.Args) {
			recFD, _ = strconv.Atoi(os.Args[i+1])
		}
	}
	p := func(n string) string { return filepath.Join(root, n) }
	exists := func(n string) bool { _, err := os.Stat(p(n)); return err == nil }
	appendLine(p("starts"), strconv.Itoa(os.Getpid()))
	os.WriteFile(p("args"), []byte(strings.Join(os.Args, "\n")+"\n"), 0o644)
	if exists("crash") {
		os.Exit(1)
	}
	if recFD >= 0 {
		go readRecords(os.NewFile(uintptr(recFD), "exit-records"), p("records"))
	}
	if exists("orphan7") {
		exec.Command("sh", "-c", "sh -c 'sleep 0.5; exit 7' & echo $! >"+p("orphan7.pid")+".tmp; mv "+p("orphan7.pid")+".tmp "+p("orphan7.pid")).Run()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	if exists("ignoreterm") {
		signal.Ignore(syscall.SIGTERM)
	}
	if exists("orphan") {
		exec.Command("sh", "-c", "sleep 1 & echo $! >"+p("orphan.pid")+".tmp; mv "+p("orphan.pid")+".tmp "+p("orphan.pid")).Run()
	}
	if exists("linger") {
		c := exec.Command("sh", "-c", "sleep 1000 & echo $! >"+p("linger2.pid")+"; wait")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		c.Start()
		l := exec.Command("setsid", "sleep", "1000")
		l.Start()
		os.WriteFile(p("linger.pid"), []byte(strconv.Itoa(l.Process.Pid)), 0o644)
	}
	os.WriteFile(p("ready"), nil, 0o644)
	for {
		select {
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				appendLine(p("events"), "HUP")
			case syscall.SIGTERM:
				appendLine(p("events"), "TERM")
				os.Exit(0)
			}
		case <-time.After(time.Hour):
		}
	}
}

func appendLine(path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	f.WriteString(s + "\n")
	f.Close()
}

// readRecords decodes the supervisor's exit-record stream (the layout of
// sysinit.Record, which this test binary must not import to stay a
// stand-alone fake) until EOF.
func readRecords(f *os.File, out string) {
	b := make([]byte, 24)
	for {
		if _, err := io.ReadFull(f, b); err != nil {
			return
		}
		pid := int32(binary.LittleEndian.Uint32(b[0:]))
		ws := binary.LittleEndian.Uint32(b[4:])
		start := binary.LittleEndian.Uint64(b[8:])
		appendLine(out, fmt.Sprintf("%d %d %d %d", os.Getpid(), pid, start, ws))
	}
}
