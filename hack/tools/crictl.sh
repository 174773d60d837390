#!/usr/bin/env bash
# crictl.sh ensures crictl (the CRI command-line client) and prints its path.
# e2e tests drive CRI endpoints with it exactly as an operator would.
source "$(dirname "$0")/lib.sh"

CRICTL_VERSION=${CRICTL_VERSION:-1.37.0}
dir=$(cache_dir crictl "$CRICTL_VERSION")
lock_dir "$dir"
if ! cached "$dir"; then
	build_start "$dir"
	log "building crictl v$CRICTL_VERSION"
	(cd / && GOFLAGS= CGO_ENABLED=0 GOBIN="$dir" go install -trimpath \
		-ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" \
		"sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION") >&2
	"$dir/crictl" --version >&2
	build_done "$dir"
fi
echo "$dir/crictl"
