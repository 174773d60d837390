// Command imgreg builds the container images that CRI conformance tests pull
// and serves them from an OCI registry on a loopback address.
//
// These machines reach no container registry, yet critest (and our own CRI
// tests) pull images by their public names: registry.k8s.io/..., gcr.io/...,
// docker.io/.... imgreg builds stand-ins for all of them from a static busybox
// and three tiny programs (pause, websrv, nnp), pushes them into an in-memory
// registry, and writes containerd certs.d mirror files that send those
// registries to it. Layers are built deterministically, so digests are stable
// from run to run.
//
// Usage:
//
//	imgreg -addr 127.0.0.1:0 -certs-dir DIR -addr-file FILE
//
// It prints "READY <addr>" on stdout once every image is pushed, and keeps
// serving until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// mirrored lists the registries whose pulls the certs.d files redirect here,
// with the upstream server each hosts.toml names.
var mirrored = map[string]string{
	"registry.k8s.io": "https://registry.k8s.io",
	"k8s.gcr.io":      "https://k8s.gcr.io",
	"gcr.io":          "https://gcr.io",
	"public.ecr.aws":  "https://public.ecr.aws",
	"docker.io":       "https://registry-1.docker.io",
}

func main() {
	self, _ := os.Executable()
	binDir := filepath.Dir(self)
	addr := flag.String("addr", "127.0.0.1:5000", "listen address; port 0 picks a free port")
	addrFile := flag.String("addr-file", "", "write the listening address here once all images are pushed")
	certsDir := flag.String("certs-dir", "", "write containerd certs.d/<host>/hosts.toml mirror files here")
	list := flag.Bool("list", false, "print the image names (repository:tag, without registry) and exit")
	var in inputs
	flag.StringVar(&in.busybox, "busybox", filepath.Join(binDir, "busybox"), "static busybox binary")
	flag.StringVar(&in.pause, "pause", filepath.Join(binDir, "pause"), "pause binary")
	flag.StringVar(&in.websrv, "websrv", filepath.Join(binDir, "websrv"), "web server binary standing in for nginx/httpd")
	flag.StringVar(&in.nnp, "nnp", filepath.Join(binDir, "nnp"), "static binary printing its effective uid (installed setuid)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *addr, *addrFile, *certsDir, *list, in); err != nil {
		log.Error("imgreg failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, addr, addrFile, certsDir string, list bool, in inputs) error {
	images, err := catalogue(in)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	if list {
		for _, n := range names {
			fmt.Println(n)
		}
		return nil
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(newDiscardLogger())),
		ReadHeaderTimeout: 30 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	real := ln.Addr().String()

	for _, n := range names {
		ref, err := name.ParseReference(real+"/"+n, name.Insecure)
		if err != nil {
			return fmt.Errorf("image %s: %w", n, err)
		}
		if err := remote.Write(ref, images[n]); err != nil {
			return fmt.Errorf("push %s: %w", n, err)
		}
		d, err := images[n].Digest()
		if err != nil {
			return fmt.Errorf("digest of %s: %w", n, err)
		}
		log.Debug("pushed", "image", n, "digest", d)
	}
	if certsDir != "" {
		if err := writeMirrors(certsDir, real); err != nil {
			return err
		}
	}
	if addrFile != "" {
		if err := writeAtomic(addrFile, []byte(real+"\n")); err != nil {
			return err
		}
	}
	log.Info("serving images", "addr", real, "images", len(names))
	fmt.Println("READY", real)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve on %s: %w", real, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down %s: %w", real, err)
	}
	return nil
}

// writeMirrors writes one hosts.toml per mirrored registry. containerd (with
// registry config_path pointing at dir) then resolves and pulls those
// registries' images from addr over plain HTTP, and never tries upstream.
func writeMirrors(dir, addr string) error {
	for host, server := range mirrored {
		toml := fmt.Sprintf("server = %q\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n", server, addr)
		p := filepath.Join(dir, host, "hosts.toml")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("mirror dir for %s: %w", host, err)
		}
		if err := writeAtomic(p, []byte(toml)); err != nil {
			return err
		}
	}
	return nil
}

// writeAtomic makes a file appear complete or not at all, because callers
// poll for it to learn that the registry is ready.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}

// catalogue builds every image, keyed by repository path and tag without the
// registry host: the certs.d mirrors strip the host, so registry.k8s.io/pause
// and gcr.io/pause would both be served as "pause".
func catalogue(in inputs) (map[string]v1.Image, error) {
	l, err := in.load()
	if err != nil {
		return nil, err
	}
	b := l.bb
	sh := v1.Config{Cmd: []string{"sh"}}
	pauseCfg := func(version string) v1.Config {
		return v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535", Labels: map[string]string{"version": version}}
	}
	user := func(u string) v1.Config { return v1.Config{Cmd: []string{"sh"}, User: u} }
	// marker gives an image a layer of its own, so images that critest
	// expects to be distinct get distinct digests.
	marker := func(n string) layer { return newLayer().file(n, 0o644, []byte(n+"\n")) }

	nginx := newLayer().file("usr/sbin/nginx", 0o755, l.websrv).dir("usr/share/nginx/html", 0o755)
	httpd := newLayer().dir("usr/local/apache2/bin", 0o755).file("usr/local/apache2/bin/httpd", 0o755, l.websrv)
	nnp := newLayer().dir("usr/local/bin", 0o755).file("usr/local/bin/nnp", 0o4755, l.nnp)
	pause := newLayer().file("pause", 0o755, l.pause)
	group := newLayer().
		file("etc/passwd", 0o644, []byte(passwd+"default-user:x:1000:1000::/home/default-user:/bin/sh\n")).
		file("etc/group", 0o644, []byte(groupFile+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")).
		dir("home/default-user", 0o755)

	const staging = "k8s-staging-cri-tools/"
	specs := map[string]struct {
		layers []layer
		cfg    v1.Config
	}{
		// The sandbox image (pinned to 3.10.1 in our containerd config) and
		// the pause:3.9 that critest pulls and removes must differ, or the
		// removal takes the sandbox image with it.
		"pause:3.10.1": {[]layer{pause}, pauseCfg("3.10.1")},
		"pause:3.10":   {[]layer{pause}, pauseCfg("3.10")},
		"pause:3.9":    {[]layer{pause}, pauseCfg("3.9")},

		"e2e-test-images/busybox:1.29-2": {[]layer{b}, sh},
		"e2e-test-images/nonewprivs:1.3": {[]layer{b, nnp}, v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}}},
		"e2e-test-images/nginx:1.14-2": {[]layer{b, nginx}, v1.Config{Entrypoint: []string{
			"/usr/sbin/nginx", "-port=80", "-pidfile=/var/run/nginx.pid", "-title=nginx: master process nginx -g daemon off;"}}},
		"e2e-test-images/httpd:2.4.39-4": {[]layer{b, httpd}, v1.Config{Entrypoint: []string{
			"/usr/local/apache2/bin/httpd", "-port=80", "-log=AH00094: Command line: 'httpd -D FOREGROUND'"}}},

		staging + "hostnet-nginx-amd64:latest": {[]layer{b, nginx}, v1.Config{Entrypoint: []string{
			"/usr/sbin/nginx", "-port=12003", "-pidfile=/var/run/nginx.pid", "-title=nginx: master process"}}},
		staging + "test-image-user-uid:latest":            {[]layer{b}, user("1002")},
		staging + "test-image-user-username:latest":       {[]layer{b}, user("www-data")},
		staging + "test-image-user-uid-group:latest":      {[]layer{b}, user("1003:users")},
		staging + "test-image-user-username-group:latest": {[]layer{b}, user("www-data:users")},
		staging + "test-image-predefined-group:latest":    {[]layer{b, group}, user("1000")},
		staging + "test-image-latest:latest":              {[]layer{b, marker("test-image-latest")}, sh},
		staging + "test-image-tag:test":                   {[]layer{b, marker("test-image-tag-test")}, sh},
		staging + "test-image-tag:all":                    {[]layer{b, marker("test-image-tag-all")}, sh},
		staging + "test-image-1:latest":                   {[]layer{b, marker("test-image-1")}, sh},
		staging + "test-image-2:latest":                   {[]layer{b, marker("test-image-2")}, sh},
		staging + "test-image-3:latest":                   {[]layer{b, marker("test-image-3")}, sh},
		// One image under three tags: critest checks that ListImages
		// reports them as one image with three tags.
		staging + "test-image-tags:1": {[]layer{b, marker("test-image-tags")}, sh},
		staging + "test-image-tags:2": {[]layer{b, marker("test-image-tags")}, sh},
		staging + "test-image-tags:3": {[]layer{b, marker("test-image-tags")}, sh},
	}
	// Plain busybox references: docker.io/library/busybox and "busybox" with
	// the tags our own tests and crictl examples use.
	for _, tag := range []string{"latest", "1", "1.35", "1.35.0", "1-glibc", "1.35.0-glibc", "1-musl", "1-uclibc"} {
		specs["library/busybox:"+tag] = struct {
			layers []layer
			cfg    v1.Config
		}{[]layer{b}, sh}
	}

	out := make(map[string]v1.Image, len(specs))
	for n, s := range specs {
		img, err := buildImage(s.layers, s.cfg)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", n, err)
		}
		out[n] = img
	}
	return out, nil
}

// newDiscardLogger silences the registry's per-request access log.
func newDiscardLogger() *stdlog.Logger { return stdlog.New(io.Discard, "", 0) }
