package service

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"corral.io/corral/agent/proc"
	"corral.io/corral/agent/unit"
)

func TestTTYSpec(t *testing.T) {
	tests := []struct {
		name string
		x    unit.Exec
		want *proc.TTY
		term string
	}{
		{"no terminal", unit.Exec{StandardInput: "null", StandardOutput: unit.Output{Kind: "journal"}}, nil, ""},
		{"Debian serial-getty@ttyS0",
			unit.Exec{StandardInput: "tty", StandardOutput: unit.Output{Kind: "tty"}, TTYPath: "/dev/ttyS0", TTYReset: true, TTYVHangup: true},
			&proc.TTY{Path: "/dev/ttyS0", Stdin: true, Stdout: true, Stderr: true, Reset: true, VHangup: true}, "vt220"},
		{"getty@tty1 with VT deallocation",
			unit.Exec{StandardInput: "tty", StandardOutput: unit.Output{Kind: "tty"}, TTYPath: "/dev/tty1", TTYVTDisallocate: true},
			&proc.TTY{Path: "/dev/tty1", Stdin: true, Stdout: true, Stderr: true, VTDisallocate: true}, "linux"},
		{"tty-force, output inherits stdin, stderr to the journal",
			unit.Exec{StandardInput: "tty-force", StandardOutput: unit.Output{Kind: "inherit"}, StandardError: unit.Output{Kind: "journal"}},
			&proc.TTY{Stdin: true, Acquire: proc.AcquireForce, Stdout: true}, "vt220"},
		{"tty-fail",
			unit.Exec{StandardInput: "tty-fail", TTYPath: "/dev/pts/3", StandardOutput: unit.Output{Kind: "null"}},
			&proc.TTY{Path: "/dev/pts/3", Stdin: true, Acquire: proc.AcquireFail}, "vt220"},
		{"output only: inherit of /dev/null is not the terminal",
			unit.Exec{StandardInput: "null", StandardOutput: unit.Output{Kind: "inherit"}, StandardError: unit.Output{Kind: "tty"}},
			&proc.TTY{Stderr: true}, "vt220"},
		{"reset only",
			unit.Exec{StandardInput: "null", TTYReset: true},
			&proc.TTY{Reset: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ttySpec(&tt.x)); diff != "" {
				t.Errorf("ttySpec (-want +got):\n%s", diff)
			}
			if got := termFor(&tt.x); got != tt.term {
				t.Errorf("TERM %q, want %q", got, tt.term)
			}
		})
	}
}
