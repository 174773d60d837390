// Package proc starts service processes with their full systemd.exec
// environment: cgroup membership, session, resource limits, nice and OOM
// score, umask, user and groups, no_new_privs, working directory and file
// descriptors, all set up before the program runs.
//
// Go cannot run code between fork and exec, and syscall.SysProcAttr covers
// only part of that list, so the child is a trampoline: the Spawner forks and
// execs a helper binary (the agent itself, /proc/self/exe, by default) whose
// main calls MaybeTrampoline first. The trampoline reads the Spec from its
// environment, performs each step in the order of systemd's exec_child, and
// execs the real program. A close-on-exec error pipe tells the parent which
// step failed; on success exec closes it, so Start returns only once the
// program really runs. The child exits with systemd's EXIT_* code on failure,
// so that a unit's status shows "status=203/EXEC" as it would under systemd.
package proc
