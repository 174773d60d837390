#!/usr/bin/env bash
# images.sh ensures the offline image registry (test/tools/imgreg) and the
# binaries its images are made of, and prints the path of imgreg.
#
# imgreg finds busybox, pause, websrv and nnp next to itself, so starting it is
# just:
#   imgreg -addr 127.0.0.1:0 -certs-dir DIR/certs.d -addr-file DIR/addr
# It prints "READY <addr>" when every image is pushed; point containerd's
# registry config_path at DIR/certs.d. The cache key is a hash of the tool
# sources, so editing them rebuilds (a few seconds) while busybox stays cached.
source "$(dirname "$0")/lib.sh"

bb=$("$TOOLS_DIR/busybox.sh")
cd "$REPO_ROOT"
srcs=(test/tools/imgreg/*.go test/tools/pause/*.go test/tools/websrv/*.go test/tools/nnp/nnp.c)
key=$({ cat "${srcs[@]}"; grep 'go-containerregistry ' go.mod; } | sha256sum | cut -c1-12)
dir=$(cache_dir images "$key")
lock_dir "$dir"
if ! cached "$dir"; then
	apt_ensure gcc libc6-dev
	build_start "$dir"
	log "building imgreg, pause, websrv, nnp"
	for p in imgreg pause websrv; do
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/$p" "./test/tools/$p" >&2
	done
	gcc -static -O2 -o "$dir/nnp" test/tools/nnp/nnp.c >&2
	strip "$dir/nnp"
	build_done "$dir"
fi
# busybox lives in its own cache (it outlives source edits); link, not copy.
ln -sfn "$bb" "$dir/busybox"
echo "$dir/imgreg"
