package proc

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestServicesGetHugePagesBack: a supervisor runs with transparent huge
// pages off (sysinit.NoHugePages), which children inherit across exec; the
// trampoline turns them back on for the program.
func TestServicesGetHugePagesBack(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_THP_DISABLE, 0, 0, 0, 0)
	out, ws, _, err := run(t, sh(`grep THP_enabled /proc/self/status`))
	if err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("spawn: %v %v", err, ws)
	}
	if got := strings.Join(strings.Fields(out), " "); got != "THP_enabled: 1" {
		t.Errorf("program's %q, want THP_enabled: 1", got)
	}
}
