package sysinit

import (
	"bufio"
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Trim gives back what PID 1 (or `corral init`) holds but no longer uses,
// and returns how many bytes of its binary it unmapped.
//
// Two kinds of memory make up the supervisor's RSS (docs/BENCHMARKS.md):
//   - anonymous: the Go heap and stacks. If boot grew the heap enough to
//     run the GC, FreeOSMemory hands the freed pages back at once instead
//     of waiting for the scavenger. If no GC ran yet, forcing one would
//     cost more (its first cycle allocates ~400 KiB of mark state) than
//     the small heap could give back, so it is skipped.
//   - file: pages of the binary itself. The kernel maps up to 64 KiB around
//     each page fault (fault-around), so after boot nearly all of a 2.7 MB
//     binary is mapped although the idle loop runs a small part of it.
//     Dropping the read-only mappings' page-table entries (MADV_DONTNEED
//     on a private, never-written mapping discards nothing) leaves the
//     pages in the page cache, where the kernel may reclaim them; what the
//     idle loop runs faults back in.
func Trim() int64 {
	var gc debug.GCStats
	if debug.ReadGCStats(&gc); gc.NumGC > 0 {
		debug.FreeOSMemory()
	}
	return dropTextPages()
}

// NoHugePages turns transparent huge pages off for this process, the first
// thing a supervisor does. With THP "always" (Debian's kernels) each of
// the Go heap's first faults maps a whole 2 MiB page: measured as PID 1 in
// the boot VM, 4 MiB of a 6 MiB RSS were two huge pages of a heap that
// holds a few hundred KiB. Pages the runtime faulted before main stay huge,
// so PID 1 re-executes itself once after it (cmd/corral). The setting is
// inherited across fork and exec,
// so the core runs without THP too (its heap is small and scattered as
// well), and proc's trampoline turns it back on for every service.
func NoHugePages() error {
	return unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)
}

// HugePagesDisabled reports whether NoHugePages is in effect (it survives
// exec, so a re-executed supervisor finds it set).
func HugePagesDisabled() bool {
	v, err := unix.PrctlRetInt(unix.PR_GET_THP_DISABLE, 0, 0, 0, 0)
	return err == nil && v == 1
}

// TrimAfter runs Trim at each delay after start (the delays add up),
// calling before (if not nil) first so that what it runs, such as a log
// line, is not mapped again right after the trim. It trims the way the core trims
// after its last state change: a supervisor is busiest in the first
// seconds (modules, the core's start, reaping boot helpers), then mostly
// sleeps.
func TrimAfter(ctx context.Context, before func(), delays ...time.Duration) {
	for _, d := range delays {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if before != nil {
			before()
		}
		Trim()
	}
}

// dropTextPages unmaps the page-table entries of the read-only mappings of
// our own executable (text and rodata). Writable mappings (data, bss) are
// left alone: discarding a written private page would lose its contents.
func dropTextPages() int64 {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var (
		dropped int64
		ranges  [][2]uintptr // start, length
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.TrimSuffix(strings.Join(fields[5:], " "), " (deleted)") != exe {
			continue
		}
		perms := fields[1]
		if len(perms) < 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		ranges = append(ranges, [2]uintptr{uintptr(start), uintptr(end - start)})
	}
	// All the parsing first, the madvise calls last: whatever code runs
	// after a range was dropped maps its pages again.
	for _, r := range ranges {
		if madvise(r[0], r[1], unix.MADV_DONTNEED) == nil {
			dropped += int64(r[1])
		}
	}
	return dropped
}

func madvise(addr, length uintptr, advice int) error {
	_, _, e := unix.Syscall(unix.SYS_MADVISE, addr, length, uintptr(advice))
	if e != 0 {
		return e
	}
	return nil
}
