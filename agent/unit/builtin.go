package unit

import (
	"embed"
	"io/fs"
)

// builtinFS holds the standard targets and slices. They are used only when
// no file on the search path defines the name, so a distribution's own
// multi-user.target (or an admin's override) always wins.
//
//go:embed builtin
var builtinFS embed.FS

// builtinAliases are names that systemd ships as symlinks.
var builtinAliases = map[string]string{
	"default.target":   "multi-user.target",
	"runlevel2.target": "multi-user.target",
	"runlevel3.target": "multi-user.target",
	"runlevel4.target": "multi-user.target",
	"runlevel5.target": "graphical.target",
	"runlevel1.target": "rescue.target",
}

// builtinPrefix names embedded fragments in Unit.Path and warnings.
const builtinPrefix = "builtin:"

func builtinText(name string) (string, bool) {
	b, err := fs.ReadFile(builtinFS, "builtin/"+name)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func builtinNames() []string {
	ents, _ := fs.ReadDir(builtinFS, "builtin")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	for a := range builtinAliases {
		out = append(out, a)
	}
	return out
}
