// Package cgroup puts every unit's processes into its own control group and
// applies the unit's resource limits there, on cgroup v1 (these machines,
// one hierarchy per controller) and v2 (modern hosts, one unified tree)
// behind one Manager.
//
// A cgroup is how a service is a set of processes rather than a PID: it is
// how KillMode=control-group finds the daemons a forking service left
// behind, how Stop knows everything is gone, and how CPUQuota=, MemoryMax=
// and TasksMax= are enforced. Everything Corral creates lives under one base
// directory in each hierarchy, so that tests (and several agents) never
// touch each other's groups.
package cgroup
