#!/usr/bin/env bash
# containerd.sh ensures containerd, its runc shim, ctr and runc, and prints the
# directory that holds all four (put it on PATH when starting containerd so it
# finds the shim, and the shim finds runc).
#
# Debian's containerd 1.6 fails CRI idempotence specs and Debian's runc 1.1
# lacks user-namespace support, so both are built from the Go module proxy.
# runc needs cgo and libseccomp for its seccomp filters. Also installs the
# Debian CNI plugins (/usr/lib/cni) and iptables, which pod networking needs.
source "$(dirname "$0")/lib.sh"

CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
RUNC_VERSION=${RUNC_VERSION:-1.5.3}

apt_ensure containernetworking-plugins iptables

rdir=$(cache_dir runc "$RUNC_VERSION")
lock_dir "$rdir"
if ! cached "$rdir"; then
	apt_ensure libseccomp-dev gcc pkg-config
	build_start "$rdir"
	log "building runc v$RUNC_VERSION"
	(cd / && GOFLAGS= CGO_ENABLED=1 GOBIN="$rdir" go install -trimpath -tags seccomp \
		-ldflags "-X main.version=$RUNC_VERSION" \
		"github.com/opencontainers/runc@v$RUNC_VERSION") >&2
	"$rdir/runc" --version >&2
	build_done "$rdir"
fi

dir=$(cache_dir containerd "$CONTAINERD_VERSION")
lock_dir "$dir"
if ! cached "$dir"; then
	build_start "$dir"
	log "building containerd v$CONTAINERD_VERSION (about 3 minutes on 2 cores)"
	m=github.com/containerd/containerd/v2
	# CGO_ENABLED=0 leaves out the btrfs snapshotter (needs btrfs headers);
	# tests use overlayfs.
	(cd / && GOFLAGS= CGO_ENABLED=0 GOBIN="$dir/bin" go install -trimpath \
		-ldflags "-s -w -X $m/version.Version=v$CONTAINERD_VERSION -X $m/version.Revision=v$CONTAINERD_VERSION" \
		"$m/cmd/containerd@v$CONTAINERD_VERSION" \
		"$m/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
		"$m/cmd/ctr@v$CONTAINERD_VERSION") >&2
	"$dir/bin/containerd" --version >&2
	build_done "$dir"
fi
# runc sits in its own cache dir (it is versioned independently); the link
# makes one PATH entry enough.
ln -sfn "$rdir/runc" "$dir/bin/runc"
echo "$dir/bin"
