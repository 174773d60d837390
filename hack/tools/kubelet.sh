#!/usr/bin/env bash
# kubelet.sh ensures a kubelet built from the Go module proxy and prints its path.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod points
# every k8s.io/* staging module at ./staging/src/..., and requires them at
# v0.0.0. A scratch module that requires it must therefore replace each staging
# module with its published version (v0.<minor>.<patch>). The replace list is
# derived from kubernetes' own go.mod so it tracks the version. About 7 minutes
# on 2 cores; the binary is ~130 MiB.
source "$(dirname "$0")/lib.sh"

KUBELET_VERSION=${KUBELET_VERSION:-1.37.2}
dir=$(cache_dir kubelet "$KUBELET_VERSION")
lock_dir "$dir"
out=$dir/kubelet
if cached "$dir"; then
	echo "$out"
	exit 0
fi

build_start "$dir"
staging=v0.${KUBELET_VERSION#1.}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Ask for kubernetes' go.mod outside any module so GOFLAGS=-mod=... and the
# caller's go.mod do not interfere.
kmod=$(cd / && GOFLAGS= go mod download -json "k8s.io/kubernetes@v$KUBELET_VERSION" |
	sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -s "$kmod" ] || die "could not download k8s.io/kubernetes@v$KUBELET_VERSION"

scratch_module "$work" kubeletbuild
{
	echo "require k8s.io/kubernetes v$KUBELET_VERSION"
	echo "replace ("
	# sample-* staging modules are not published and kubelet does not need them.
	sed -n '/^replace (/,/^)/p' "$kmod" | grep '=> ./staging/' |
		grep -v 'sample-cli-plugin\|sample-controller' |
		awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
	echo ")"
} >>"$work/go.mod"
printf '//go:build tools\n\npackage kubeletbuild\n\nimport _ "k8s.io/kubernetes/cmd/kubelet"\n' >"$work/tools.go"

cd "$work"
log "resolving kubelet v$KUBELET_VERSION dependencies"
GOFLAGS= go mod tidy >&2
# Without these ldflags kubelet reports v0.0.0; tests and logs want the real
# version.
V=k8s.io/component-base/version
minor=$(echo "$KUBELET_VERSION" | cut -d. -f2)
log "building kubelet v$KUBELET_VERSION (about 7 minutes on 2 cores)"
GOFLAGS= CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
	-X $V.gitVersion=v$KUBELET_VERSION -X $V.gitMajor=${KUBELET_VERSION%%.*} -X $V.gitMinor=$minor \
	-X $V.gitTreeState=clean -X $V.buildDate=1970-01-01T00:00:00Z" \
	-o "$out" k8s.io/kubernetes/cmd/kubelet >&2
"$out" --version >&2
build_done "$dir"
echo "$out"
