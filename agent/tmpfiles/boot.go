package tmpfiles

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EnsureMachineID makes <root>/etc/machine-id hold a valid ID (32 lower-case
// hex digits). An empty, missing or malformed file gets a new random ID
// (UUID v4 bits, like systemd). When /etc is read-only the ID is written to
// /run/machine-id and bind-mounted over /etc/machine-id, so every program
// still finds it there and a later boot with a writable /etc commits it.
func EnsureMachineID(root string) (id string, created bool, err error) {
	p := filepath.Join(root, "etc/machine-id")
	if b, err := os.ReadFile(p); err == nil && validID(strings.TrimSpace(string(b))) {
		return strings.TrimSpace(string(b)), false, nil
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("machine-id: %w", err)
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	id = hex.EncodeToString(raw[:])
	err = writeFileAtomic(p, []byte(id+"\n"), 0o444)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, unix.EROFS) {
		return "", false, fmt.Errorf("machine-id %s: %w", p, err)
	}
	run := filepath.Join(root, "run/machine-id")
	if err := os.WriteFile(run, []byte(id+"\n"), 0o444); err != nil {
		return "", false, fmt.Errorf("machine-id %s: %w", run, err)
	}
	if err := unix.Mount(run, p, "", unix.MS_BIND, ""); err != nil {
		return "", false, fmt.Errorf("machine-id: bind %s over read-only %s: %w", run, p, err)
	}
	return id, true, nil
}

func validID(s string) bool {
	if len(s) != 32 || s == strings.Repeat("0", 32) {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// writeFileAtomic writes through a temp file and rename, so a crash never
// leaves a half-written file behind. It keeps a bind-mount target (the
// rename would fail with EBUSY) by falling back to a plain write.
func writeFileAtomic(p string, data []byte, mode os.FileMode) error {
	tmp := p + ".corral-tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		if errors.Is(err, unix.EBUSY) {
			return os.WriteFile(p, data, mode)
		}
		return err
	}
	return nil
}

// RandomSeedPath is where the seed lives, the same file as systemd's so an
// image can switch between the two inits.
const RandomSeedPath = "var/lib/systemd/random-seed"

const seedSize = 512

// LoadRandomSeed mixes the saved seed into the kernel's pool (a write to
// /dev/urandom: mixed in, not credited) and immediately replaces it with
// fresh randomness, so that a crash before shutdown never makes the next
// boot reuse the same seed. A missing seed is not an error (first boot).
func LoadRandomSeed(root string) error {
	p := filepath.Join(root, RandomSeedPath)
	seed, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("random seed %s: %w", p, err)
	}
	if len(seed) > 0 && !bytes.Equal(seed, make([]byte, len(seed))) {
		f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("random seed: %w", err)
		}
		// Credit the seed, as systemd-random-seed does for a seed file only
		// root can read: without credit a VM with no entropy source can
		// leave getrandom(2) blocking for long, and with it every daemon
		// that asks for random bytes at start (sshd, dbus).
		if cerr := creditSeed(f, seed); cerr != nil {
			_, err = f.Write(seed)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("random seed: write /dev/urandom: %w", err)
		}
	}
	return SaveRandomSeed(root)
}

// SaveRandomSeed stores fresh randomness for the next boot (at boot after
// loading, and at shutdown).
func SaveRandomSeed(root string) error {
	p := filepath.Join(root, RandomSeedPath)
	buf := make([]byte, seedSize)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("random seed: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("random seed %s: %w", p, err)
	}
	if err := writeFileAtomic(p, buf, 0o600); err != nil {
		return fmt.Errorf("random seed %s: %w", p, err)
	}
	return nil
}

// BootSpecifiers reads the specifier values from the running system (the
// machine ID from root).
func BootSpecifiers(root string) Specifiers {
	rd := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	var u unix.Utsname
	unix.Uname(&u)
	return Specifiers{
		MachineID:     rd(filepath.Join(root, "etc/machine-id")),
		BootID:        strings.ReplaceAll(rd("/proc/sys/kernel/random/boot_id"), "-", ""),
		Hostname:      unix.ByteSliceToString(u.Nodename[:]),
		KernelRelease: unix.ByteSliceToString(u.Release[:]),
	}
}

// creditSeed adds seed to the kernel's pool and credits its entropy
// (RNDADDENTROPY, struct rand_pool_info).
func creditSeed(f *os.File, seed []byte) error {
	buf := make([]byte, 8+len(seed))
	binary.NativeEndian.PutUint32(buf[0:], uint32(len(seed)*8)) // entropy_count, bits
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(seed)))   // buf_size, bytes
	copy(buf[8:], seed)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0])))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return errno
	}
	return nil
}
