package unit

import (
	"os"
	"path/filepath"
)

// dirIndex is one search directory listed once, so that loading thousands
// of units costs one ReadDir per directory instead of a stat per candidate.
type dirIndex struct {
	path    string
	entries map[string]os.DirEntry
}

func readIndex(dir string) dirIndex {
	d := dirIndex{path: dir, entries: map[string]os.DirEntry{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return d
	}
	for _, e := range ents {
		d.entries[e.Name()] = e
	}
	return d
}

// has reports whether name exists in the directory and whether it is (or
// points to) a directory.
func (d dirIndex) has(name string) (ok, isDir bool) {
	e, ok := d.entries[name]
	if !ok {
		return false, false
	}
	if e.Type()&os.ModeSymlink != 0 {
		fi, err := os.Stat(filepath.Join(d.path, name))
		return true, err == nil && fi.IsDir()
	}
	return true, e.IsDir()
}
