package manager

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"corral.io/corral/agent/logs"
	"corral.io/corral/agent/proc"
)

// Log pipes across a restart of the core (issue 7, docs/RECOVERY.md). Each
// service process holds a descriptor of its own log pipe's read end
// (service.logPipe), so that the pipe keeps a reader while no core runs.
// After re-adoption the new core takes that read end back from the main
// process with pidfd_getfd and drains it again: the lines written during
// the outage waited in the pipe buffer.

// logResumer is the part of the log store that drains a taken-back pipe;
// *logs.Store satisfies it.
type logResumer interface {
	Resume(unit string, stream logs.Stream, r *os.File) error
}

// adoptedProc is a re-adopted main process whose log pipes are taken back.
type adoptedProc struct {
	unit  string
	pid   int
	start uint64
}

// reclaimLogs takes back the log pipes of the adopted processes, a few at
// a time. It runs after recovery, outside the path to Ready: until it
// reaches a unit, that unit's lines wait in its pipe as they did during
// the outage.
func (m *Manager) reclaimLogs(ps []adoptedProc) {
	r, ok := any(m.logs).(logResumer)
	if !ok || len(ps) == 0 {
		return
	}
	work := make(chan adoptedProc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				k := reclaimProcLogs(r, p, m.log.Warn)
				mu.Lock()
				n += k
				mu.Unlock()
			}
		}()
	}
	for _, p := range ps {
		work <- p
	}
	close(work)
	wg.Wait()
	m.log.Info("recovery: log pipes taken back", "processes", len(ps), "pipes", n)
}

// reclaimProcLogs finds, among p's descriptors, the read end of the pipe
// on its fd 1 and of the one on its fd 2 (same pipe inode, opened for
// reading), takes each back with pidfd_getfd and resumes draining it. It
// returns the number of pipes resumed.
func reclaimProcLogs(r logResumer, p adoptedProc, warn func(string, ...any)) int {
	pfd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(pfd)
	if st, err := proc.StartTime(p.pid); err != nil || (p.start != 0 && st != p.start) {
		return 0
	}
	dir := "/proc/" + strconv.Itoa(p.pid) + "/fd/"
	out, _ := os.Readlink(dir + "1")
	errp, _ := os.Readlink(dir + "2")
	want := map[string]logs.Stream{}
	if strings.HasPrefix(errp, "pipe:") {
		want[errp] = logs.Stderr
	}
	if strings.HasPrefix(out, "pipe:") {
		want[out] = logs.Stdout // one pipe for both: stdout
	}
	if len(want) == 0 {
		return 0
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		link, err := os.Readlink(dir + e.Name())
		stream, ok := want[link]
		if err != nil || !ok || !readOnly(p.pid, fd) {
			continue
		}
		delete(want, link)
		nfd, err := unix.PidfdGetfd(pfd, fd, 0)
		if err != nil {
			warn("recovery: taking back a log pipe", "unit", p.unit, "pid", p.pid, "fd", fd, "err", err)
			continue
		}
		unix.CloseOnExec(nfd)
		if err := r.Resume(p.unit, stream, os.NewFile(uintptr(nfd), "log pipe "+p.unit+" "+string(stream))); err != nil {
			warn("recovery: resuming a log pipe", "unit", p.unit, "err", err)
			continue
		}
		n++
	}
	return n
}

// readOnly tells whether fd of pid was opened for reading only (the
// "flags:" line of fdinfo, octal; O_ACCMODE 0 is O_RDONLY).
func readOnly(pid, fd int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "flags:"); ok {
			f, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && f&unix.O_ACCMODE == unix.O_RDONLY
		}
	}
	return false
}

// adoptedMains lists the services that have a main PID right after
// recovery: nothing has been started yet, so each is a re-adopted process.
func (m *Manager) adoptedMains() []adoptedProc {
	var out []adoptedProc
	for _, e := range m.entries() {
		if e.svc == nil {
			continue
		}
		if st := e.svc.Status(); st.MainPID != 0 {
			out = append(out, adoptedProc{unit: e.name(), pid: st.MainPID, start: st.MainPIDStart})
		}
	}
	return out
}
