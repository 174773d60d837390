package service

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// account is the part of a passwd entry the service needs for HOME/SHELL
// and for owning its directories. The child resolves User= again itself
// (proc), this is only for what the parent prepares.
type account struct {
	name, home, shell string
	uid, gid          int
}

// lookupUser reads /etc/passwd directly: the agent is static (no cgo, no
// NSS), and os/user does not expose the shell.
func lookupUser(name string) (account, error) {
	var found *account
	err := scanColon("/etc/passwd", func(f []string) bool {
		if len(f) < 7 || (f[0] != name && f[2] != name) {
			return false
		}
		uid, _ := strconv.Atoi(f[2])
		gid, _ := strconv.Atoi(f[3])
		found = &account{name: f[0], uid: uid, gid: gid, home: f[5], shell: f[6]}
		return true
	})
	if err != nil {
		return account{}, err
	}
	if found == nil {
		if n, err := strconv.Atoi(name); err == nil && n >= 0 {
			return account{name: name, uid: n, gid: n, home: "/", shell: "/bin/sh"}, nil
		}
		return account{}, fmt.Errorf("user %q not found in /etc/passwd", name)
	}
	return *found, nil
}

func lookupGroup(name string) (int, error) {
	gid := -1
	err := scanColon("/etc/group", func(f []string) bool {
		if len(f) < 3 || (f[0] != name && f[2] != name) {
			return false
		}
		gid, _ = strconv.Atoi(f[2])
		return true
	})
	if err != nil {
		return 0, err
	}
	if gid < 0 {
		if n, err := strconv.Atoi(name); err == nil && n >= 0 {
			return n, nil
		}
		return 0, fmt.Errorf("group %q not found in /etc/group", name)
	}
	return gid, nil
}

func scanColon(path string, fn func([]string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if fn(strings.Split(line, ":")) {
			return nil
		}
	}
	return sc.Err()
}
