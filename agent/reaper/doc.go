// Package reaper is the agent's only wait4(-1) loop.
//
// A process that reaps with wait4(-1) steals the exit status of every child,
// so any other cmd.Wait or os.Process.Wait in the same process races with it
// and loses statuses at random. The agent is also a child subreaper: forking
// daemons that double-fork re-parent to it, and only a wait4(-1) loop can
// reap those. So there is exactly one loop, here, and everybody else asks it
// for a PID's exit through Watch. Exits of PIDs that nobody watches yet are
// kept for a while, because a service learns its main PID (from a PID file,
// or from Start) only after the process may already have died.
package reaper
