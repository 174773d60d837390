package sysinit

import (
	"bytes"
	"errors"
	"os"
	"strconv"
)

// stat is the part of /proc/PID/stat the supervisor needs.
type stat struct {
	State byte   // R, S, D, Z, T, ...
	PPID  int    // parent PID
	Start uint64 // start time in clock ticks since boot: identity across PID reuse
}

var errBadStat = errors.New("malformed stat")

// parseStat parses the contents of /proc/PID/stat. The command name (field
// 2) may contain spaces and parentheses, so fields are counted from the last
// ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return stat{}, errBadStat
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return stat{}, errBadStat
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return stat{}, errBadStat
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return stat{}, errBadStat
	}
	return stat{State: f[0][0], PPID: ppid, Start: start}, nil
}

// readStat reads /proc/<proc>/stat under the given procfs mount.
func readStat(procfs string, pid int) (stat, error) {
	p := procfs + "/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(p)
	if err != nil {
		return stat{}, err
	}
	s, err := parseStat(b)
	if err != nil {
		return stat{}, errors.New(p + ": " + err.Error())
	}
	return s, nil
}

// processTable maps every live PID to its stat, read from procfs.
func processTable(procfs string) (map[int]stat, error) {
	ents, err := os.ReadDir(procfs)
	if err != nil {
		return nil, err
	}
	t := make(map[int]stat, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		s, err := readStat(procfs, pid)
		if err != nil {
			continue // exited while we were scanning
		}
		t[pid] = s
	}
	return t, nil
}

// descendants returns the PIDs in t whose parent chain leads to root (root
// itself excluded), in no particular order.
func descendants(t map[int]stat, root int) []int {
	memo := map[int]bool{root: true, 0: false}
	var leads func(pid int, depth int) bool
	leads = func(pid, depth int) bool {
		if v, ok := memo[pid]; ok {
			return v
		}
		s, ok := t[pid]
		if !ok || depth > len(t) || s.PPID == pid {
			memo[pid] = false
			return false
		}
		v := leads(s.PPID, depth+1)
		memo[pid] = v
		return v
	}
	var out []int
	for pid := range t {
		if pid != root && leads(pid, 0) {
			out = append(out, pid)
		}
	}
	return out
}
