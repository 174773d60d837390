package unit

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInstall(t *testing.T) {
	l, root := newTestLoader(t, map[string]string{
		lib + "web.service":     "[Service]\nExecStart=/bin/web\n[Install]\nWantedBy=multi-user.target\nRequiredBy=app.target\nAlias=www.service\nAlso=web.socket\n",
		lib + "web.socket":      "[Socket]\nListenStream=80\n[Install]\nWantedBy=sockets.target\n",
		lib + "static.service":  "[Service]\nExecStart=/bin/s\n",
		lib + "helper.service":  "[Service]\nExecStart=/bin/h\n[Install]\nAlso=web.service\n",
		lib + "getty@.service":  "[Service]\nExecStart=/sbin/agetty %I\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n",
		lib + "noinst@.service": "[Service]\nExecStart=/bin/n %i\n[Install]\nWantedBy=multi-user.target\n",
		lib + "nick.service":    "-> web.service",
		"opt/linked.service":    "[Service]\nExecStart=/bin/l\n[Install]\nWantedBy=multi-user.target\n",
	})
	// systemctl link: a config-dir link to a file outside the search path.
	writeTree(t, root, map[string]string{"etc/corral/system/linked.service": "-> " + filepath.Join(root, "opt/linked.service")})
	l.Invalidate()
	in := NewInstaller(l, root)
	etc := filepath.Join(root, "etc/corral/system")
	frag := filepath.Join(root, lib, "web.service")
	sock := filepath.Join(root, lib, "web.socket")

	state := func(name, want string) {
		t.Helper()
		got, err := in.IsEnabled(name)
		if err != nil || got != want {
			t.Errorf("IsEnabled(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	state("web.service", "disabled")
	state("static.service", "static")
	state("helper.service", "indirect")
	state("nick.service", "alias")
	state("missing.service", "not-found")
	state("linked.service", "linked")
	state("getty@.service", "disabled")

	changes, err := in.Enable("web.service")
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{"symlink", etc + "/multi-user.target.wants/web.service", frag},
		{"symlink", etc + "/app.target.requires/web.service", frag},
		{"symlink", etc + "/www.service", frag},
		{"symlink", etc + "/sockets.target.wants/web.socket", sock},
	}
	if diff := cmp.Diff(want, changes); diff != "" {
		t.Errorf("Enable (-want +got)\n%s", diff)
	}
	if got := changes[0].String(); got != "Created symlink "+etc+"/multi-user.target.wants/web.service → "+frag+"." {
		t.Errorf("Change.String() = %q", got)
	}
	state("web.service", "enabled")
	state("web.socket", "enabled")
	state("www.service", "alias")
	if u := l.Load("www.service"); u.Name != "web.service" || !contains(u.Aliases, "www.service") {
		t.Errorf("Load(www.service) = %s aliases %v", u.Name, u.Aliases)
	}
	if u := l.Load("multi-user.target"); !contains(u.Deps[Wants], "web.service") {
		t.Errorf("enabled unit not in multi-user.target Wants: %v", u.Deps[Wants])
	}
	if c, err := in.Enable("web.service"); err != nil || len(c) != 0 {
		t.Errorf("second Enable = %v, %v; want no changes", c, err)
	}

	changes, err = in.Enable("getty@.service")
	if err != nil || len(changes) != 1 || changes[0].Path != etc+"/getty.target.wants/getty@tty1.service" {
		t.Errorf("Enable(getty@.service) = %v, %v", changes, err)
	}
	state("getty@tty1.service", "enabled")
	state("getty@.service", "indirect")
	if _, err := in.Enable("noinst@.service"); !errors.Is(err, ErrNoInstance) {
		t.Errorf("Enable(noinst@.service) err = %v", err)
	}
	if _, err := in.Enable("missing.service"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Enable(missing) err = %v", err)
	}

	changes, err = in.Disable("web.service")
	if err != nil || len(changes) != 4 {
		t.Errorf("Disable = %v, %v; want 4 removals", changes, err)
	}
	state("web.service", "disabled")
	state("web.socket", "disabled")

	changes, err = in.Mask("web.service")
	if err != nil || len(changes) != 1 {
		t.Fatalf("Mask = %v, %v", changes, err)
	}
	state("web.service", "masked")
	if u := l.Load("web.service"); u.LoadState != LoadMasked {
		t.Errorf("masked unit loads as %s", u.LoadState)
	}
	if _, err := in.Enable("web.service"); err == nil {
		t.Error("Enable of a masked unit succeeded")
	}
	changes, err = in.Unmask("web.service")
	if err != nil || len(changes) != 1 {
		t.Fatalf("Unmask = %v, %v", changes, err)
	}
	if u := l.Load("web.service"); u.LoadState != LoadLoaded {
		t.Errorf("unmasked unit loads as %s", u.LoadState)
	}
	if err := os.WriteFile(etc+"/real.service", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Mask("real.service"); err == nil {
		t.Error("Mask over a regular file succeeded")
	}
}
