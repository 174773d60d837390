package guest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLookPath(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "opt", "x"), 0o755)
	// An applet link that is absolute inside the image and dangles on the
	// guest itself must still resolve.
	os.Symlink("/bin/busybox", filepath.Join(root, "bin", "sh"))
	os.WriteFile(filepath.Join(root, "opt", "x", "tool"), nil, 0o755)
	os.MkdirAll(filepath.Join(root, "bin", "dir"), 0o755)
	for _, tc := range []struct {
		argv0 string
		env   []string
		want  string
		err   bool
	}{
		{"sh", nil, "/bin/sh", false},
		{"/abs/path", nil, "/abs/path", false},
		{"tool", nil, "", true},
		{"tool", []string{"PATH=/opt/x:/bin"}, "/opt/x/tool", false},
		{"dir", nil, "", true},
		{"missing", nil, "", true},
	} {
		got, err := lookPath(root, tc.argv0, tc.env)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("lookPath(%q, %v) = %q, %v; want %q, error %v", tc.argv0, tc.env, got, err, tc.want, tc.err)
		}
	}
}
