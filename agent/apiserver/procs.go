package apiserver

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	corralv1 "corral.io/corral/api/corral/v1"
)

// processTree nests the cgroup's PIDs by parent, for the CGroup: section of
// status. A process that exited between listing and reading is left out.
func (s *Server) processTree(pids []int) []*corralv1.Process {
	nodes := map[int64]*corralv1.Process{}
	for _, pid := range pids {
		ppid, cmd, err := s.proc(pid)
		if err != nil {
			continue
		}
		nodes[int64(pid)] = &corralv1.Process{Pid: int64(pid), Ppid: int64(ppid), Cmdline: cmd}
	}
	keys := make([]int64, 0, len(nodes))
	for k := range nodes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var roots []*corralv1.Process
	for _, k := range keys {
		n := nodes[k]
		if p, ok := nodes[n.Ppid]; ok && n.Ppid != n.Pid {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots
}

// readProc reads the parent PID and command line of pid from /proc. Kernel
// threads and zombies have an empty cmdline; like ps, they show as [comm].
func readProc(pid int) (int, string, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// comm may contain spaces and parentheses: split at the last ')'.
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return 0, "", fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	comm := string(stat[open+1 : end])
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 2 {
		return 0, "", fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, "", fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0, "", err
	}
	cmd := strings.TrimSpace(string(bytes.ReplaceAll(bytes.TrimRight(raw, "\x00"), []byte{0}, []byte{' '})))
	if cmd == "" {
		cmd = "[" + comm + "]"
	}
	return ppid, cmd, nil
}
