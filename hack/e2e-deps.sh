#!/usr/bin/env bash
# e2e-deps.sh ensures what `make e2e` needs beyond `make deps`: the Debian
# packages the e2e tests use directly (CNI plugins in /usr/lib/cni, iptables
# for the bridge plugin, python3 as the in-pod web server), then every real
# component (crictl, critest, containerd+runc, the offline images, kubelet),
# built from the Go module proxy and cached under /var/cache/corral-test.
# Idempotent; on a fresh machine about 12 minutes, warm about a second.
set -euo pipefail
source "$(dirname "$0")/tools/lib.sh"
apt_ensure containernetworking-plugins iptables python3 iproute2
"$TOOLS_DIR/all.sh" crictl critest containerd images kubelet >&2
