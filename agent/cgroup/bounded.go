package cgroup

import (
	"runtime"
	"syscall"

	"corral.io/corral/agent/unit"
)

// boundedManager lets only a few goroutines into the cgroup filesystem at a
// time. The kernel serialises cgroup creation and removal anyway (one
// cgroup_mutex), so parallel callers only wait there — each in a blocking
// syscall that makes the Go runtime start a new OS thread. Starting a target
// of hundreds of units would otherwise leave the agent with hundreds of
// threads for the rest of its life.
type boundedManager struct {
	Manager
	sem chan struct{}
}

func bounded(m Manager) Manager {
	return &boundedManager{Manager: m, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

func (b *boundedManager) enter() func() {
	b.sem <- struct{}{}
	return func() { <-b.sem }
}

func (b *boundedManager) Create(path string) error {
	defer b.enter()()
	return b.Manager.Create(path)
}

func (b *boundedManager) Apply(path string, r unit.Resources) error {
	defer b.enter()()
	return b.Manager.Apply(path, r)
}

func (b *boundedManager) Remove(path string) error {
	defer b.enter()()
	return b.Manager.Remove(path)
}

func (b *boundedManager) Kill(path string, sig syscall.Signal) error {
	defer b.enter()()
	return b.Manager.Kill(path, sig)
}
