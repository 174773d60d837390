#!/usr/bin/env bash
# Runs Corral in the foreground with the example units (`make run`, after
# `make build`). As root the node root is / (so the API socket is the real
# /run/corral/api.sock); otherwise everything lives in a fresh temp dir.
# Extra arguments go to `corral init` (e.g. --log-level debug).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in corral corral-agent corralctl; do
	[ -x "bin/$b" ] || { echo "bin/$b missing: run 'make build' first" >&2; exit 1; }
done
if [ "$(id -u)" -eq 0 ]; then
	root=/
else
	root=$(mktemp -d "${TMPDIR:-/tmp}/corral-run.XXXXXX")
fi
sock="${root%/}/run/corral/api.sock"
cat >&2 <<MSG
Corral root:  $root
Unit dir:     deploy/examples (see deploy/examples/README.md)
API socket:   $sock
Try, in another shell:
  bin/corralctl --root $root list-units
  bin/corralctl --root $root status hello.service
Stop with ^C (orderly shutdown of every unit).
MSG
# Not PID 1: start the examples, not the host's default.target (which on a
# Debian machine would pull in its own services, gettys included).
exec bin/corral init --root "$root" --unit-dir deploy/examples --default-target examples.target "$@"
