package native

import (
	"errors"
	"os"

	"corral.io/corral/runtimes/cni"
)

// pluginExec runs CNI plugins through the agent's spawner and reaper:
// libcni's default runs them with os/exec, whose Wait would race the
// agent's wait4(-1) loop.
func (b *Backend) pluginExec() cni.Exec {
	return cni.Exec{Spawner: b.units.Spawner(), Reaper: b.units.Reaper(), Log: b.log}
}

var errNoHolder = errors.New("pod has no namespace holder")

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
