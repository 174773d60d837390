#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine. Idempotent and
# quiet when everything is present.
set -euo pipefail
need=()
[ -x /usr/bin/python3 ] || need+=(python3)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v socat >/dev/null || need+=(socat)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
