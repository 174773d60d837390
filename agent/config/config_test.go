package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadMissingFileIsDefault(t *testing.T) {
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		CRI:      CRI{DefaultHandler: "native", StreamAddress: "127.0.0.1:0"},
		Handlers: map[string]Handler{"native": {Backend: "native"}},
		CNI:      CNI{ConfDir: "/etc/cni/net.d", BinDir: "/usr/lib/cni"},
	}
	if d := cmp.Diff(want, c); d != "" {
		t.Fatalf("default config (-want +got):\n%s", d)
	}
}

func TestLoadFile(t *testing.T) {
	root := t.TempDir()
	p := Path(root)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	data := `
[cri]
default_handler = "runc"
stream_address = "127.0.0.1:10010"

[handlers.native]
backend = "native"

[handlers.runc]
backend = "containerd"

[handlers.isulad]
backend = "isulad"
address = "/tmp/isulad.sock"

[handlers.vm]
backend = "qemu"
kernel = "/k"
initrd = "/i"

[cni]
conf_dir = "/c"
`
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		CRI: CRI{DefaultHandler: "runc", StreamAddress: "127.0.0.1:10010"},
		Handlers: map[string]Handler{
			"native": {Backend: "native"},
			"runc":   {Backend: "containerd", Address: "/run/containerd/containerd.sock"},
			"isulad": {Backend: "isulad", Address: "/tmp/isulad.sock"},
			"vm":     {Backend: "qemu", Kernel: "/k", Initrd: "/i"},
		},
		CNI:  CNI{ConfDir: "/c", BinDir: "/usr/lib/cni"},
		Path: p,
	}
	if d := cmp.Diff(want, c); d != "" {
		t.Fatalf("config (-want +got):\n%s", d)
	}
	if got := strings.Join(c.HandlerNames(), ","); got != "isulad,native,runc,vm" {
		t.Fatalf("HandlerNames = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string // substrings of the error
	}{
		{"unknown top key", "[crii]\ndefault_handler='native'\n", []string{"f.toml", "unknown key", "crii"}},
		{"unknown handler key", "[handlers.native]\nbackend='native'\nkernl='x'\n", []string{"f.toml", "handlers.native.kernl"}},
		{"unknown backend", "[handlers.x]\nbackend='docker'\n", []string{"f.toml", "handlers.x", `unknown backend "docker"`}},
		{"missing backend", "[handlers.x]\naddress='/a'\n", []string{"handlers.x", "backend is required"}},
		{"default not configured", "[cri]\ndefault_handler='vm'\n", []string{`"vm" is not a configured handler`, "native"}},
		{"no default among many", "[handlers.a]\nbackend='qemu'\n[handlers.b]\nbackend='qemu'\n", []string{"default_handler is required"}},
		{"syntax", "[cri\n", []string{"f.toml"}},
		{"wrong type", "[cri]\ndefault_handler=1\n", []string{"f.toml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), "/x/f.toml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSingleHandlerIsDefault(t *testing.T) {
	c, err := Parse([]byte("[handlers.vm]\nbackend='qemu'\n"), "f")
	if err != nil {
		t.Fatal(err)
	}
	if c.CRI.DefaultHandler != "vm" {
		t.Fatalf("default = %q", c.CRI.DefaultHandler)
	}
}
