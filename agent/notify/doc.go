// Package notify is the receiving end of the sd_notify protocol: the
// datagram socket whose path services get as $NOTIFY_SOCKET and on which
// they report READY=1, STATUS=..., MAINPID=..., WATCHDOG=1, FDSTORE=1 and
// friends.
//
// The sender is identified by the kernel (SCM_CREDENTIALS with SO_PASSCRED),
// never by what the message says, because NotifyAccess= decides which PIDs
// of a unit may speak for it. File descriptors (FDSTORE=1) arrive as
// SCM_RIGHTS. Send is a minimal client for tests and helpers.
package notify
