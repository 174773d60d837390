#!/usr/bin/env bash
# critest.sh ensures critest (the CRI conformance suite) and the ginkgo CLI next
# to it, and prints critest's path.
#
# cri-tools ships critest as a Go test (cmd/critest/cri_test.go), so it is built
# with `go test -c` in a scratch module that requires cri-tools; `go install`
# cannot build it. With -parallel N critest re-executes itself through the
# `ginkgo` CLI found on PATH, so callers must put this directory on PATH
# (PATH="$(dirname "$(critest.sh)"):$PATH").
source "$(dirname "$0")/lib.sh"

CRITEST_VERSION=${CRITEST_VERSION:-1.37.0}
GINKGO_VERSION=${GINKGO_VERSION:-2.32.1}
dir=$(cache_dir critest "$CRITEST_VERSION")
lock_dir "$dir"
if ! cached "$dir"; then
	build_start "$dir"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	scratch_module "$work" critestbuild
	cd "$work"
	log "building critest v$CRITEST_VERSION"
	GOFLAGS= go get "sigs.k8s.io/cri-tools@v$CRITEST_VERSION" >&2
	# -mod=mod lets `go test -c` record the test-only dependencies of critest
	# (ginkgo, gomega, ...) that a plain `go get` does not list.
	GOFLAGS=-mod=mod CGO_ENABLED=0 go test -c -trimpath \
		-ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRITEST_VERSION" \
		-o "$dir/critest" sigs.k8s.io/cri-tools/cmd/critest >&2
	log "building ginkgo v$GINKGO_VERSION"
	(cd / && GOFLAGS= CGO_ENABLED=0 GOBIN="$dir" go install -trimpath -ldflags "-s -w" \
		"github.com/onsi/ginkgo/v2/ginkgo@v$GINKGO_VERSION") >&2
	"$dir/ginkgo" version >&2
	build_done "$dir"
fi
echo "$dir/critest"
