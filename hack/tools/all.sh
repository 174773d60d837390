#!/usr/bin/env bash
# all.sh [TOOL...] ensures every test tool (or the named ones: crictl critest
# containerd busybox images kubelet) and prints one line per tool on stdout:
#   <tool> <path> <build seconds of the cached build>
# On a fresh machine the builds take about 13 minutes in all on 2 cores, most
# of it kubelet, which therefore builds in the background alongside the rest.
source "$(dirname "$0")/lib.sh"

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(crictl critest containerd busybox images kubelet)
logs=$(mktemp -d "${TMPDIR:-/var/tmp}/corral-tools.XXXXXX")
trap 'rm -rf "$logs"' EXIT

declare -A pid
for t in "${tools[@]}"; do
	[ -x "$TOOLS_DIR/$t.sh" ] || die "unknown tool $t"
done
t0=$(date +%s)
# kubelet is by far the longest build and mostly CPU-bound compilation of
# code nothing else shares, so overlapping it with the rest shortens the
# total even on 2 cores (the others spend much of their time downloading).
for t in "${tools[@]}"; do
	if [ "$t" = kubelet ]; then
		"$TOOLS_DIR/kubelet.sh" >"$logs/kubelet.out" 2>"$logs/kubelet.err" &
		pid[kubelet]=$!
	fi
done
fail=0
for t in "${tools[@]}"; do
	[ "$t" = kubelet ] && continue
	"$TOOLS_DIR/$t.sh" >"$logs/$t.out" 2>"$logs/$t.err" || { fail=1; log "$t failed:"; tail -20 "$logs/$t.err" >&2; }
done
if [ -n "${pid[kubelet]:-}" ]; then
	wait "${pid[kubelet]}" || { fail=1; log "kubelet failed:"; tail -20 "$logs/kubelet.err" >&2; }
fi
[ $fail -eq 0 ] || die "some tools failed to build"

for t in "${tools[@]}"; do
	p=$(tail -1 "$logs/$t.out")
	# The cache dir is the path's parent, or its grandparent for .../bin.
	d=$(dirname "$p")
	[ -f "$d/.done" ] || d=$(dirname "$d")
	printf '%-10s %-60s built in %ss\n' "$t" "$p" "$(build_seconds "$d")"
done
log "all tools ready in $(($(date +%s) - t0))s"
