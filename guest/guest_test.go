package guest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmdline  string
		ok, err  bool
		addr, gw string
	}{
		{cmdline: "console=ttyS0 quiet", ok: false},
		{cmdline: "quiet corral.ip=10.88.0.5/16 corral.gw=10.88.0.1 panic=-1", ok: true, addr: "10.88.0.5/16", gw: "10.88.0.1"},
		{cmdline: "corral.ip=10.1.2.3/32", ok: true, addr: "10.1.2.3/32"},
		{cmdline: "corral.ip=10.1.2.3", err: true},
		{cmdline: "corral.ip=10.1.2.3/24 corral.gw=nope", err: true},
	} {
		c, ok, err := ParseCmdline(tc.cmdline)
		if (err != nil) != tc.err || ok != tc.ok {
			t.Errorf("%q: ok=%v err=%v, want ok=%v err=%v", tc.cmdline, ok, err, tc.ok, tc.err)
			continue
		}
		if tc.addr != "" && c.Addr.String() != tc.addr {
			t.Errorf("%q: addr %s, want %s", tc.cmdline, c.Addr, tc.addr)
		}
		if tc.gw != "" && c.Gateway.String() != tc.gw {
			t.Errorf("%q: gateway %s, want %s", tc.cmdline, c.Gateway, tc.gw)
		}
	}
}

func TestBlockDeviceBySerial(t *testing.T) {
	sys := t.TempDir()
	for dev, serial := range map[string]string{"vda": "img2", "vdb": "img0", "vdc": ""} {
		os.MkdirAll(filepath.Join(sys, dev), 0o755)
		if serial != "" {
			os.WriteFile(filepath.Join(sys, dev, "serial"), []byte(serial+"\n"), 0o444)
		}
	}
	a := &Agent{SysBlock: sys}
	for in, want := range map[string]string{"img0": "vdb", "img2": "vda", "vdc": "vdc", "img9": "img9"} {
		if got := a.blockDevice(in); got != want {
			t.Errorf("blockDevice(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	for _, tc := range []struct{ env, want []string }{
		{nil, []string{"PATH=" + DefaultPath, "HOME=/root"}},
		{[]string{"PATH=/x", "A=1"}, []string{"HOME=/root", "PATH=/x", "A=1"}},
		{[]string{"HOME=/h", "PATHX=1"}, []string{"PATH=" + DefaultPath, "HOME=/h", "PATHX=1"}},
	} {
		if got := withDefaults(tc.env, "/root"); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("withDefaults(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nusers:x:100:bob\nwww-data:x:33:\nextra:x:500:bob,alice\n"), 0o644)
	for _, tc := range []struct {
		user string
		want Cred
		err  bool
	}{
		{"", Cred{Home: "/root"}, false},
		{"0", Cred{Home: "/root"}, false},
		{"1002", Cred{UID: 1002}, false},
		{"1003:100", Cred{UID: 1003, GID: 100}, false},
		{"www-data", Cred{UID: 33, GID: 33, Home: "/var/www"}, false},
		{"www-data:users", Cred{UID: 33, GID: 100, Home: "/var/www"}, false},
		{"bob", Cred{UID: 1000, GID: 1000, Groups: []uint32{100, 500}, Home: "/home/bob"}, false},
		{"1000", Cred{UID: 1000, GID: 1000, Groups: []uint32{100, 500}, Home: "/home/bob"}, false},
		{"nobody", Cred{}, true},
		{"bob:nogroup", Cred{}, true},
	} {
		got, err := ResolveUser(root, tc.user)
		if (err != nil) != tc.err {
			t.Errorf("ResolveUser(%q) error %v, want error %v", tc.user, err, tc.err)
			continue
		}
		if !tc.err && (got.UID != tc.want.UID || got.GID != tc.want.GID || got.Home != tc.want.Home || !slices.Equal(got.Groups, tc.want.Groups)) {
			t.Errorf("ResolveUser(%q) = %+v, want %+v", tc.user, got, tc.want)
		}
	}
}

func TestWriteEtc(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "host-resolv.conf")
	os.WriteFile(outside, []byte("host\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink(outside, filepath.Join(root, "etc", "resolv.conf"))
	if err := writeEtc(root, "/etc/resolv.conf", "nameserver 10.0.0.10\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "host\n" {
		t.Errorf("write followed the image's symlink: outside file is %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf")); string(b) != "nameserver 10.0.0.10\n" {
		t.Errorf("resolv.conf = %q", b)
	}
	for _, bad := range []string{"/etc/../x", "/bin/sh", "etc/hosts", "/etc/", "/etc/sub/x"} {
		if err := writeEtc(root, bad, "x"); err == nil {
			t.Errorf("writeEtc(%q) succeeded", bad)
		}
	}
	empty := t.TempDir()
	if err := writeEtc(empty, "/etc/hostname", "pod\n"); err != nil {
		t.Errorf("image without /etc: %v", err)
	}
}

func TestAddGroups(t *testing.T) {
	for _, tc := range []struct{ have, extra, want []uint32 }{
		{nil, nil, nil},
		{[]uint32{10}, []uint32{1234}, []uint32{10, 1234}},
		{[]uint32{10, 1234}, []uint32{1234, 5}, []uint32{10, 1234, 5}},
	} {
		if got := addGroups(tc.have, tc.extra); !slices.Equal(got, tc.want) {
			t.Errorf("addGroups(%v, %v) = %v, want %v", tc.have, tc.extra, got, tc.want)
		}
	}
}
