package guest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Cred is who a container process runs as.
type Cred struct {
	UID, GID uint32
	Groups   []uint32 // supplementary, from the image's /etc/group
	Home     string   // from the image's /etc/passwd, "" if unknown
}

// ResolveUser maps an OCI user ("", "uid", "uid:gid", "name",
// "name:group") to ids with the image's own /etc/passwd and /etc/group,
// as runc does: a numeric uid missing from passwd is fine (gid 0), a name
// missing is an error.
func ResolveUser(root, user string) (Cred, error) {
	var c Cred
	if user == "" {
		return Cred{Home: "/root"}, nil
	}
	u, g, hasGroup := strings.Cut(user, ":")
	passwd := readDB(filepath.Join(root, "etc", "passwd"))
	var name string
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		c.UID = uint32(n)
		for _, e := range passwd {
			if len(e) >= 6 && e[2] == u {
				name = e[0]
				gid, _ := strconv.ParseUint(e[3], 10, 32)
				c.GID, c.Home = uint32(gid), e[5]
				break
			}
		}
	} else {
		i := slices.IndexFunc(passwd, func(e []string) bool { return len(e) >= 6 && e[0] == u })
		if i < 0 {
			return c, fmt.Errorf("user %q not found in the image's /etc/passwd", u)
		}
		e := passwd[i]
		uid, err1 := strconv.ParseUint(e[2], 10, 32)
		gid, err2 := strconv.ParseUint(e[3], 10, 32)
		if err1 != nil || err2 != nil {
			return c, fmt.Errorf("user %q: bad /etc/passwd entry", u)
		}
		name, c.UID, c.GID, c.Home = u, uint32(uid), uint32(gid), e[5]
	}
	groups := readDB(filepath.Join(root, "etc", "group"))
	if hasGroup {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			c.GID = uint32(n)
		} else {
			i := slices.IndexFunc(groups, func(e []string) bool { return len(e) >= 3 && e[0] == g })
			if i < 0 {
				return c, fmt.Errorf("group %q not found in the image's /etc/group", g)
			}
			gid, err := strconv.ParseUint(groups[i][2], 10, 32)
			if err != nil {
				return c, fmt.Errorf("group %q: bad /etc/group entry", g)
			}
			c.GID = uint32(gid)
		}
	}
	if name != "" {
		for _, e := range groups {
			if len(e) >= 4 && slices.Contains(strings.Split(e[3], ","), name) {
				if gid, err := strconv.ParseUint(e[2], 10, 32); err == nil && uint32(gid) != c.GID {
					c.Groups = append(c.Groups, uint32(gid))
				}
			}
		}
	}
	return c, nil
}

// readDB reads a colon-separated file; a missing file is empty.
func readDB(path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

// addGroups appends extra to groups, skipping those already there.
func addGroups(groups, extra []uint32) []uint32 {
	for _, g := range extra {
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return groups
}
