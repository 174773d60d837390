package main

import (
	"path/filepath"
	"syscall"

	"corral.io/corral/sysinit"
)

// multiCall maps the name corral was run as (a symlink: /usr/sbin/poweroff
// → corral) to the machine action it asks PID 1 for.
func multiCall(argv0 string) (sysinit.Action, bool) {
	switch filepath.Base(argv0) {
	case "poweroff":
		return sysinit.ActionPoweroff, true
	case "reboot":
		return sysinit.ActionReboot, true
	case "halt":
		return sysinit.ActionHalt, true
	}
	return 0, false
}

// askInit sends PID 1 the signal for a (sysinit.SignalFor): SIGPWR for
// poweroff, SIGINT for reboot, SIGUSR2 for halt.
func askInit(kill func(pid int, sig syscall.Signal) error, a sysinit.Action) error {
	return kill(1, sysinit.SignalFor(a))
}
