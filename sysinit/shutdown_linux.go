package sysinit

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// RebootCmd is the reboot(2) command for a machine action.
func RebootCmd(a Action) int {
	switch a {
	case ActionReboot:
		return unix.LINUX_REBOOT_CMD_RESTART
	case ActionHalt:
		return unix.LINUX_REBOOT_CMD_HALT
	}
	return unix.LINUX_REBOOT_CMD_POWER_OFF
}

// Finish is the end of every shutdown once no process but us is left:
// sync, unmount everything (lazily, and read-only where a device
// is behind it, when busy), remount / read-only, sync again. Every error is
// logged and the sequence goes on: whatever can be saved is saved.
// The caller then calls reboot(2). Swap is left on: nothing on it
// outlives the machine, and swapoff would have to page it all back in.
func Finish(log *slog.Logger) {
	log.Info("syncing filesystems")
	syncTimeout(log, 10*time.Second)
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		log.Error("cannot list mounts; only remounting / read-only", "err", err)
	}
	for _, m := range UnmountOrder(ParseMountinfo(string(b))) {
		err := unix.Unmount(m.Target, 0)
		if err == nil {
			log.Debug("unmounted", "path", m.Target)
			continue
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			continue // already gone with its parent, or not a mount point any more
		}
		if m.BlockBacked() {
			if rerr := unix.Mount("", m.Target, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); rerr != nil {
				log.Error("remount read-only", "path", m.Target, "source", m.Source, "err", rerr)
			} else {
				log.Info("remounted read-only", "path", m.Target, "reason", err)
			}
		}
		if derr := unix.Unmount(m.Target, unix.MNT_DETACH); derr != nil {
			log.Warn("unmount", "path", m.Target, "err", err, "lazy_err", derr)
		} else {
			log.Debug("detached", "path", m.Target, "reason", err)
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		log.Error("remount / read-only", "err", err)
	} else {
		log.Info("remounted / read-only")
	}
	syncTimeout(log, 10*time.Second)
}

// syncTimeout runs sync(2) but gives up waiting after d: a dead disk must
// not keep the machine from powering off (the sync goes on in the kernel).
func syncTimeout(log *slog.Logger, d time.Duration) {
	done := make(chan struct{})
	go func() { unix.Sync(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		log.Error("sync timed out", "timeout", d)
	}
}
