package proc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Caps are the capability sets of a program as bit masks (1<<CAP_*). The
// kernel keeps only what is possible: sets are cut down to what the
// spawner itself holds, and a non-root program keeps only Ambient across
// exec, as execve(2) defines it.
type Caps struct {
	Bounding    uint64
	Effective   uint64
	Permitted   uint64
	Inheritable uint64
	Ambient     uint64
}

// dropBounding removes from the bounding set every capability not in c;
// it needs CAP_SETPCAP, so it runs before the user switch.
func (c *Caps) dropBounding() error {
	for i := 0; i < 64; i++ {
		if c.Bounding&(1<<i) != 0 {
			continue
		}
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			return nil // past the kernel's last capability
		}
		if err != nil {
			return fmt.Errorf("capabilities: drop %d from the bounding set: %w", i, err)
		}
	}
	return nil
}

// apply sets the effective, permitted and inheritable sets and raises the
// ambient ones, after the user switch (which PR_SET_KEEPCAPS survived).
func (c *Caps) apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("capabilities: capget: %w", err)
	}
	have := uint64(cur[0].Permitted) | uint64(cur[1].Permitted)<<32
	perm := c.Permitted & have
	eff := c.Effective & perm
	inh := (c.Inheritable | c.Ambient) & perm
	data := [2]unix.CapUserData{
		{Effective: uint32(eff), Permitted: uint32(perm), Inheritable: uint32(inh)},
		{Effective: uint32(eff >> 32), Permitted: uint32(perm >> 32), Inheritable: uint32(inh >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capabilities: capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("capabilities: clear ambient: %w", err)
	}
	for i := 0; i < 64; i++ {
		if c.Ambient&inh&(1<<i) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
			return fmt.Errorf("capabilities: raise ambient %d: %w", i, err)
		}
	}
	return nil
}
