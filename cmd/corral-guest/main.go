// Command corral-guest is PID 1 of a VM pod's microVM: it boots the guest
// (mounts, modules) and serves the host's runtimes/qemu over the
// virtio-serial port "agent" with the protocol of guest/wire. It links only
// the standard library and x/sys, because its size is boot time under TCG.
package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"corral.io/corral/guest"
	"corral.io/corral/guest/wire"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("guest", "corral")
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic", "value", r)
			powerOff()
		}
	}()
	if os.Getpid() == 1 {
		guest.Boot(log)
	}
	dev, err := guest.FindPort("agent", 10*time.Second)
	if err != nil {
		log.Error("no host channel", "err", err)
		powerOff()
	}
	a := &guest.Agent{Root: "/run/corral", Dev: "/dev", SysBlock: "/sys/block", PowerOff: powerOff, Log: log}
	log.Info("ready", "port", dev, "uptime", guest.Uptime())
	for {
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			log.Error("open host channel", "port", dev, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		err = a.Serve(f)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, wire.ErrClosed) {
			log.Warn("host channel", "err", err)
		}
		// No host on the other end (not yet connected, or its agent
		// restarted): reads return EOF until it comes back.
		time.Sleep(10 * time.Millisecond)
	}
}

// powerOff ends the VM. A restart rather than a power-off: with QEMU's
// -no-reboot it exits either way, and a reset needs no ACPI in the guest.
func powerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}
