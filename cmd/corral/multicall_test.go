package main

import (
	"syscall"
	"testing"

	"corral.io/corral/sysinit"
)

func TestMultiCallDispatch(t *testing.T) {
	tests := []struct {
		argv0   string
		want    syscall.Signal // sent to PID 1; 0 = not a multi-call name
		wantAct sysinit.Action
	}{
		{"/usr/sbin/poweroff", syscall.SIGPWR, sysinit.ActionPoweroff},
		{"reboot", syscall.SIGINT, sysinit.ActionReboot},
		{"/sbin/halt", syscall.SIGUSR2, sysinit.ActionHalt},
		{"/usr/sbin/corral", 0, 0},
		{"poweroff.sh", 0, 0},
		{"", 0, 0},
	}
	for _, tt := range tests {
		a, ok := multiCall(tt.argv0)
		if ok != (tt.want != 0) || a != tt.wantAct {
			t.Errorf("multiCall(%q) = %v, %v", tt.argv0, a, ok)
			continue
		}
		if !ok {
			continue
		}
		var gotPID int
		var gotSig syscall.Signal
		askInit(func(pid int, sig syscall.Signal) error { gotPID, gotSig = pid, sig; return nil }, a)
		if gotPID != 1 || gotSig != tt.want {
			t.Errorf("%s sent %v to %d, want %v to 1", tt.argv0, gotSig, gotPID, tt.want)
		}
	}
}
