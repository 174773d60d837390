package sysinit

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// HandoffEnv names the environment variable through which a sysinit that
// re-execs itself (SIGTERM to PID 1) tells its successor which core is
// running and which exits it recorded: "agent=PID start=UNIXNANO
// dropped=N fd=FD stream=FD2", the records being RecordSize-byte entries in
// the memfd FD, and FD2 the write end of the running core's exit-record
// stream (absent if it has none). The core keeps running across the exec,
// so no unit notices, and it keeps receiving exit records.
const HandoffEnv = "CORRAL_SYSINIT_HANDOFF"

// Handoff is the state a sysinit passes to the next one over exec.
type Handoff struct {
	AgentPID   int
	AgentStart time.Time
	Records    []Record
	Dropped    uint64
	Stream     int // write end of the core's exit-record stream; 0 = none
}

// Export writes the records to a memfd that survives exec and returns the
// environment entry naming it, and the fd, which the caller closes if exec
// fails. A raw fd rather than an *os.File: the next process owns it, and no
// finalizer may close it behind anyone's back.
func (h Handoff) Export() (string, int, error) {
	fd, err := unix.MemfdCreate("corral-sysinit-handoff", 0) // no CLOEXEC: it is for the exec
	if err != nil {
		return "", -1, fmt.Errorf("handoff: memfd: %w", err)
	}
	b := make([]byte, 0, len(h.Records)*RecordSize)
	for _, r := range h.Records {
		b, _ = r.AppendBinary(b)
	}
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return "", -1, fmt.Errorf("handoff: write: %w", err)
		}
		b = b[n:]
	}
	var start int64
	if !h.AgentStart.IsZero() {
		start = h.AgentStart.UnixNano()
	}
	env := fmt.Sprintf("%s=agent=%d start=%d dropped=%d fd=%d", HandoffEnv, h.AgentPID, start, h.Dropped, fd)
	if h.Stream > 0 {
		// It must survive the exec; ImportHandoff sets close-on-exec again.
		if _, err := unix.FcntlInt(uintptr(h.Stream), unix.F_SETFD, 0); err == nil {
			env += fmt.Sprintf(" stream=%d", h.Stream)
		}
	}
	return env, fd, nil
}

// ImportHandoff reads the state named by the value of HandoffEnv and closes
// its fd, so that no core inherits it.
func ImportHandoff(v string) (Handoff, error) {
	var h Handoff
	fd := -1
	for _, kv := range strings.Fields(v) {
		k, val, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return h, fmt.Errorf("handoff %q: %s: %w", v, k, err)
		}
		switch k {
		case "agent":
			h.AgentPID = int(n)
		case "start":
			if n != 0 {
				h.AgentStart = time.Unix(0, n)
			}
		case "dropped":
			h.Dropped = uint64(n)
		case "fd":
			fd = int(n)
		case "stream":
			if n > 2 {
				h.Stream = int(n)
				unix.CloseOnExec(h.Stream)
			}
		}
	}
	if fd < 0 {
		return h, nil
	}
	f := os.NewFile(uintptr(fd), "corral-sysinit-handoff")
	defer f.Close()
	unix.CloseOnExec(fd)
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
	if err != nil {
		return h, fmt.Errorf("handoff: read fd %d: %w", fd, err)
	}
	for len(b) >= RecordSize {
		var r Record
		r.UnmarshalBinary(b)
		h.Records = append(h.Records, r)
		b = b[RecordSize:]
	}
	return h, nil
}
