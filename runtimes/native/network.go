package native

import (
	"errors"
	"os"

	"corral.io/corral/runtimes/cni"
)

// procExec runs short-lived processes (CNI plugins, ExecSync) through the
// agent's spawner and reaper: os/exec's Wait would race the agent's
// wait4(-1) loop, and the trampoline lets them join a container's
// namespaces and cgroup.
func (b *Backend) procExec() cni.Exec {
	return cni.Exec{Spawner: b.units.Spawner(), Reaper: b.units.Reaper(), Log: b.log}
}

var errNoHolder = errors.New("pod has no namespace holder")

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
