package sysinit

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// RealMounter mounts for real. Root prefixes every path (normally "/").
type RealMounter struct{}

var _ Mounter = RealMounter{}

func (RealMounter) MkdirAll(path string, mode os.FileMode) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return os.MkdirAll(path, mode)
}

func (RealMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

// Mounted compares the device of target with that of its parent: a mount
// point sits on another device. It needs no /proc, so it works before /proc
// is mounted.
func (RealMounter) Mounted(target string) bool {
	var st, pst unix.Stat_t
	if unix.Lstat(target, &st) != nil || unix.Lstat(filepath.Dir(target), &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev || (st.Ino == pst.Ino && target != "/")
}
