package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CGO is off, so os/user cannot ask NSS; like a static init system we read
// the host's /etc/passwd and /etc/group directly. Numeric ids are accepted
// without an entry.

type account struct {
	name        string
	uid, gid    int
	home, shell string
}

// passwdFile and groupFile are variables for tests.
var (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// scan calls fn with the colon-separated fields of each line of path until fn
// returns true.
func scan(path string, fn func(f []string) bool) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
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

// lookupUser resolves a user name or number.
func lookupUser(s string) (account, error) {
	num, numErr := strconv.Atoi(s)
	var a account
	found := false
	err := scan(passwdFile, func(f []string) bool {
		if len(f) < 7 {
			return false
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return false
		}
		if f[0] == s || (numErr == nil && uid == num) {
			a = account{name: f[0], uid: uid, gid: gid, home: f[5], shell: f[6]}
			found = true
			return true
		}
		return false
	})
	if found {
		return a, nil
	}
	if numErr == nil && num >= 0 {
		// A bare number without an entry: systemd allows it; it gets the
		// group of the same number.
		return account{name: s, uid: num, gid: num, home: "/", shell: "/bin/sh"}, nil
	}
	if err != nil {
		return a, fmt.Errorf("user %q: %w", s, err)
	}
	return a, fmt.Errorf("user %q: no such user in %s", s, passwdFile)
}

// lookupGroup resolves a group name or number.
func lookupGroup(s string) (int, error) {
	num, numErr := strconv.Atoi(s)
	gid := -1
	err := scan(groupFile, func(f []string) bool {
		if len(f) < 3 {
			return false
		}
		if f[0] == s {
			if g, err := strconv.Atoi(f[2]); err == nil {
				gid = g
				return true
			}
		}
		return false
	})
	if gid >= 0 {
		return gid, nil
	}
	if numErr == nil && num >= 0 {
		return num, nil
	}
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", s, err)
	}
	return 0, fmt.Errorf("group %q: no such group in %s", s, groupFile)
}

// memberOf lists the groups that name a user as a member, as initgroups(3)
// would.
func memberOf(user string) ([]int, error) {
	var gids []int
	err := scan(groupFile, func(f []string) bool {
		if len(f) < 4 {
			return false
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == user {
				if g, err := strconv.Atoi(f[2]); err == nil {
					gids = append(gids, g)
				}
				break
			}
		}
		return false
	})
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("groups of %q: %w", user, err)
	}
	return gids, nil
}
