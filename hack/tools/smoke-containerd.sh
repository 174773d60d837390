#!/usr/bin/env bash
# smoke-containerd.sh runs critest against a private containerd 2.4.2 + runc
# 1.5.3 fed by the offline image registry, and prints a one-line result on
# stdout ("critest containerd: P passed, F failed of N ran; log: FILE").
#
# It is the baseline that Corral's own critest runs are compared with, and a
# check that the whole tool chain works on this machine. Expected here: every
# spec passes except the one that pulls an image by a public digest, which no
# offline registry can serve; any other failure makes the script exit 1.
# Compare runs by that rule rather than by pass count: a few NRI specs skip
# themselves depending on timing, so 124 to 126 specs run.
#
# Environment: CRITEST_PARALLEL (default 4), CRITEST_ARGS (extra flags),
# SMOKE_KEEP=1 keeps the scratch directory for inspection.
source "$(dirname "$0")/lib.sh"

parallel=${CRITEST_PARALLEL:-4}
bin=$("$TOOLS_DIR/containerd.sh")
critest=$("$TOOLS_DIR/critest.sh")
crictl_bin=$("$TOOLS_DIR/crictl.sh")
imgreg=$("$TOOLS_DIR/images.sh")

# Not /tmp: other tests on these machines have been seen to empty it.
work=$(mktemp -d "${SMOKE_TMP:-/var/tmp}/corral-smoke.XXXXXX")
# mktemp makes it 0700; user-namespaced containers (critest's idmap specs) run
# as an unprivileged host uid and must traverse it to reach their rootfs.
chmod 0755 "$work"
results=${SMOKE_RESULTS:-/var/tmp/corral-smoke-results}
mkdir -p "$results"
reg_pid= ctd_pid=

# shim_pids lists processes whose command line names this containerd's
# socket. It reads /proc with builtins only: an external grep would carry the
# socket path in its own arguments and find itself.
shim_pids() {
	local f cmd
	for f in /proc/[0-9]*/cmdline; do
		cmd=$({ tr '\0' ' ' <"$f"; } 2>/dev/null) || continue
		[[ $cmd == *containerd-shim*"$work/containerd.sock"* ]] && echo "${f//[^0-9]/}"
	done
	return 0
}

# cleanup stops only what this script started: the registry and containerd by
# PID, and the shims serving this containerd, found by its unique socket path.
cleanup() {
	set +e
	if [ -n "$ctd_pid" ] && kill -0 "$ctd_pid" 2>/dev/null; then
		# Removing pods first lets CNI tear down their networks.
		crictl rmp -fa >/dev/null 2>&1
		[ -z "$(crictl pods -q 2>/dev/null)" ] || log "pods left in containerd after rmp -a"
		kill -TERM "$ctd_pid"
		for _ in $(seq 100); do kill -0 "$ctd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$ctd_pid" 2>/dev/null
	fi
	# Shims of removed pods exit on their own, a little after the removal.
	local p shims
	for _ in $(seq 50); do
		shims=$(shim_pids)
		[ -z "$shims" ] && break
		sleep 0.1
	done
	for p in $shims; do
		log "killing leftover shim $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
		kill -KILL "$p" 2>/dev/null
	done
	[ -n "$reg_pid" ] && kill -TERM "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	# Unmount whatever containerd left mounted under the scratch dir
	# (snapshots, shm), deepest first.
	awk -v w="$work" '$2 == w || index($2, w "/") == 1 {print $2}' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	[ -f "$work/cni/bridge" ] && ip link del "$(cat "$work/cni/bridge")" 2>/dev/null
	if [ "${SMOKE_KEEP:-}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the image registry"
"$imgreg" -addr 127.0.0.1:0 -certs-dir "$work/certs.d" -addr-file "$work/registry.addr" \
	>"$work/imgreg.log" 2>&1 &
reg_pid=$!
for _ in $(seq 600); do [ -s "$work/registry.addr" ] && break; kill -0 "$reg_pid" 2>/dev/null || break; sleep 0.1; done
[ -s "$work/registry.addr" ] || { cat "$work/imgreg.log" >&2; die "image registry did not start"; }

cfg=$("$TOOLS_DIR/containerd-config.sh" "$work" "$work/certs.d")
sock=unix://$work/containerd.sock
printf 'runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 30\n' "$sock" "$sock" >"$work/crictl.yaml"
crictl() { "$crictl_bin" --config "$work/crictl.yaml" "$@"; }
log "starting containerd ($cfg)"
PATH="$bin:$PATH" "$bin/containerd" --config "$cfg" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 300); do
	crictl --timeout 2s version >/dev/null 2>&1 && break
	kill -0 "$ctd_pid" 2>/dev/null || break
	sleep 0.1
done
crictl version >&2 || { tail -30 "$work/containerd.log" >&2; die "containerd did not start"; }
# Fail fast, with a clear message, if the mirrors do not work.
crictl pull registry.k8s.io/e2e-test-images/busybox:1.29-2 >&2 ||
	{ tail -30 "$work/containerd.log" >&2; die "pull through the offline registry failed"; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$results/critest-containerd-$stamp.log
log "running critest -parallel $parallel (about 75 s); log: $out"
t0=$(date +%s)
set +e
# critest re-executes itself through the ginkgo CLI, which sits next to it.
# Its temp files (a symlink to itself, pod log dirs) go under $work, not /tmp.
mkdir -m 0755 "$work/tmp"
# shellcheck disable=SC2086
TMPDIR=$work/tmp PATH="$(dirname "$critest"):$bin:$PATH" "$critest" --runtime-endpoint "$sock" --image-endpoint "$sock" \
	-nri-socket "$work/nri.sock" -parallel "$parallel" ${CRITEST_ARGS:-} >"$out" 2>&1
rc=$?
set -e
secs=$(($(date +%s) - t0))
cp "$work/containerd.log" "$results/containerd-$stamp.log"

# Ginkgo's summary: "Ran 126 of 134 Specs ..." and "125 Passed | 1 Failed | ...".
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$out")
ran=$(grep -oE 'Ran [0-9]+ of [0-9]+ Specs' <<<"$summary" | tail -1 | awk '{print $2}')
passed=$(grep -oE '[0-9]+ Passed' <<<"$summary" | tail -1 | awk '{print $1}')
failed=$(grep -oE '[0-9]+ Failed' <<<"$summary" | tail -1 | awk '{print $1}')
[ -n "$ran" ] && [ -n "$passed" ] || { tail -40 "$out" >&2; die "critest produced no summary (exit $rc)"; }
failures=$(grep -E '^\s*\[FAIL\]' <<<"$summary" | sort -u || true)
[ -n "$failures" ] && log "failed specs:" && printf '%s\n' "$failures" >&2
unexpected=$(grep -v -i 'digest' <<<"$failures" || true)

echo "critest containerd-2.4.2: ${passed} passed, ${failed:-0} failed of ${ran} ran in ${secs}s; log: $out"
[ -z "$unexpected" ] || die "unexpected critest failures (see $out)"
