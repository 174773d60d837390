package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the mtime of every file and the creation time of every image, so
// that rebuilding yields the same digests.
var epoch = time.Unix(1700000000, 0).UTC()

// entry is one tar member of a layer.
type entry struct {
	name     string
	mode     int64
	typeflag byte
	link     string
	data     []byte
}

// layer is an ordered list of tar members; order is kept as written so the
// tarball (and its digest) is deterministic.
type layer struct{ entries []entry }

func newLayer() layer { return layer{} }

func (l layer) dir(name string, mode int64) layer {
	l.entries = append(append([]entry(nil), l.entries...), entry{name: name + "/", mode: mode, typeflag: tar.TypeDir})
	return l
}

func (l layer) file(name string, mode int64, data []byte) layer {
	l.entries = append(append([]entry(nil), l.entries...), entry{name: name, mode: mode, typeflag: tar.TypeReg, data: data})
	return l
}

// hardlink adds name as a hard link to target. busybox applets must be hard
// links: with symlinked applets critest's MaskedPaths spec fails.
func (l layer) hardlink(name, target string) layer {
	l.entries = append(append([]entry(nil), l.entries...), entry{name: name, mode: 0o755, typeflag: tar.TypeLink, link: target})
	return l
}

func (l layer) tar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range l.entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Typeflag: e.typeflag, Linkname: e.link,
			Size: int64(len(e.data)), ModTime: epoch, Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", e.name, err)
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				return nil, fmt.Errorf("tar data %s: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

func (l layer) v1() (v1.Layer, error) {
	b, err := l.tar()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// buildImage assembles a linux/amd64 image from layers and a runtime config.
func buildImage(layers []layer, cfg v1.Config) (v1.Image, error) {
	img := empty.Image
	for _, l := range layers {
		vl, err := l.v1()
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, vl); err != nil {
			return nil, fmt.Errorf("append layer: %w", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: epoch}
	if len(cfg.Env) == 0 {
		cfg.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// inputs names the binaries the images are made of.
type inputs struct{ busybox, pause, websrv, nnp string }

// loaded holds the inputs read into memory plus the busybox base layer that
// most images share.
type loaded struct {
	bb                 layer
	pause, websrv, nnp []byte
}

func (in inputs) load() (loaded, error) {
	var l loaded
	var err error
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{in.pause, &l.pause}, {in.websrv, &l.websrv}, {in.nnp, &l.nnp}} {
		if *f.dst, err = os.ReadFile(f.path); err != nil {
			return l, fmt.Errorf("read image input: %w", err)
		}
	}
	l.bb, err = busyboxLayer(in.busybox)
	return l, err
}

// busyboxLayer is a minimal root filesystem: busybox, its applets as hard
// links at the paths busybox itself reports, and the /etc files that user
// and group lookups in critest need.
func busyboxLayer(bin string) (layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return layer{}, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return layer{}, fmt.Errorf("%s --list-full: %w", bin, err)
	}
	l := newLayer()
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "run", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var", "var/run", "var/www"} {
		l = l.dir(d, 0o755)
	}
	l = l.dir("tmp", 0o1777)
	l = l.file("bin/busybox", 0o755, data)
	for _, applet := range strings.Fields(string(out)) {
		if applet != "bin/busybox" {
			l = l.hardlink(applet, "bin/busybox")
		}
	}
	return l.
		file("etc/passwd", 0o644, []byte(passwd)).
		file("etc/group", 0o644, []byte(groupFile)).
		file("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n")).
		file("etc/resolv.conf", 0o644, nil), nil
}

// passwd and groupFile carry the users and groups critest refers to by name
// (www-data, users, nobody).
const passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const groupFile = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
`
