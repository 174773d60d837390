// Package sysinit is Corral's supervisor: the process behind `corral init`
// and, as PID 1, the machine's init (early mounts, console, command line,
// power button, re-exec, shutdown to reboot(2); see docs/PID1.md, and
// cmd/corral/pid1_linux.go for the order in which the pieces run). It is deliberately tiny and imports only
// the standard library and golang.org/x/sys, because everything it links is
// paid for in memory and start-up time before the machine does anything, and
// because a panic here takes the whole node down.
//
// The split follows sysMaster's "1 + 1 + N": the supervisor only keeps the
// core (corral-agent) alive and cleans up after it; all unit logic lives in
// the core, which can crash and be restarted without losing services.
//
// What the supervisor does:
//
//	| concern              | behaviour                                                                  |
//	|----------------------|----------------------------------------------------------------------------|
//	| subreaper            | PR_SET_CHILD_SUBREAPER, so orphans of a dead core re-parent to us          |
//	| reaping              | one loop, wait4(-1) on SIGCHLD, for the core and every re-parented orphan  |
//	| exit records         | every reaped non-core process → Record{PID, StartTime, Status, Time} in a  |
//	|                      | bounded Table and a log line; a later issue hands them to the next core    |
//	| core lifecycle       | start `corral-agent --root ... --helper <corral>`; restart when it dies:   |
//	|                      | at once the first time, then 10 ms doubling to 1 s while it crashes within |
//	|                      | 1 s of start; the backoff resets once it has run for 10 s                  |
//	| core output          | the core's stdout and stderr are the supervisor's stderr                   |
//	| SIGTERM, SIGINT      | (not PID 1; as PID 1 see pid1Signals) orderly shutdown: SIGTERM the core, SIGKILL it after StopTimeout, then     |
//	|                      | SIGTERM (SIGKILL after 5 s) every remaining descendant found in /proc,     |
//	|                      | reap them all, return nil                                                  |
//	| SIGHUP               | forwarded to the core (daemon-reload convention)                           |
//	| panic                | recovered in Run; goes to the same orderly shutdown                        |
//
// Descendants are found by walking /proc parent links rather than by process
// group or session, because services call setsid and leave our group.
package sysinit
