#!/usr/bin/env bash
# cri.sh [N] times RunPodSandbox + CreateContainer + StartContainer for a
# native pod on Corral against a runc pod on containerd 2.4.2 (+ runc 1.5.3),
# in the same run, with test/e2e/cribench over the CRI (a Go client, as
# kubelet; crictl's own process start would dominate the native figure).
# N iterations per runtime (default 30), interleaved, after one warm-up
# round; twice: host network, then pod network (CNI bridge) for both.
# Prints cribench's tables; the ratio column is native's total over runc's.
#
# Everything runs from a scratch dir under /var/tmp and is removed at the
# end: containerd's config comes from hack/tools/containerd-config.sh and its
# images from the offline registry (hack/tools/images.sh). Corral runs in a
# UTS namespace of its own, so no pod can rename the machine.
source "$(dirname "$0")/../tools/lib.sh"

n=${1:-30}
ctd_bin=$("$TOOLS_DIR/containerd.sh")
crictl_bin=$("$TOOLS_DIR/crictl.sh")
imgreg=$("$TOOLS_DIR/images.sh")
work=$(mktemp -d /var/tmp/corral-bench-cri.XXXXXX)
chmod 0755 "$work"
cgroup=corral-bench-cri-$$
h=$(printf '%s' "$work" | cksum | cut -d' ' -f1)
cbridge=cbn$((h % 100000))
reg_pid= ctd_pid= corral_pid=

cleanup() {
	set +e
	[ -n "$corral_pid" ] && crictl corral rmp -fa >/dev/null 2>&1
	[ -n "$ctd_pid" ] && crictl ctd rmp -fa >/dev/null 2>&1
	for p in $corral_pid $ctd_pid $reg_pid; do
		kill -TERM "$p" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	for p in $(grep -l -s -F "$work/ctd/containerd.sock" /proc/[0-9]*/cmdline | cut -d/ -f3); do kill -KILL "$p" 2>/dev/null; done
	awk -v w="$work" '$2 == w || index($2, w "/") == 1 {print $2}' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	[ -f "$work/ctd/cni/bridge" ] && ip link del "$(cat "$work/ctd/cni/bridge")" 2>/dev/null
	ip link del "$cbridge" 2>/dev/null
	for c in /sys/fs/cgroup/*/"$cgroup"; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

crictl() { local s=$1; shift; "$crictl_bin" --config /dev/null -r "unix://$(sock "$s")" -i "unix://$(sock "$s")" -t 30s "$@"; }
sock() { case $1 in ctd) echo "$work/ctd/containerd.sock" ;; corral) echo "$work/corral/run/corral/cri.sock" ;; esac; }

log "building corral and cribench"
mkdir -p "$work/bin"
(cd "$REPO_ROOT" && for b in corral corral-agent corralctl; do CGO_ENABLED=0 go build -o "$work/bin/$b" "./cmd/$b"; done &&
	go build -o "$work/bin/cribench" ./test/e2e/cribench)

log "starting the image registry and containerd $("$ctd_bin/containerd" --version | awk '{print $3}')"
"$imgreg" -addr 127.0.0.1:0 -certs-dir "$work/certs.d" -addr-file "$work/registry.addr" >"$work/imgreg.log" 2>&1 &
reg_pid=$!
for _ in $(seq 600); do [ -s "$work/registry.addr" ] && break; sleep 0.1; done
[ -s "$work/registry.addr" ] || die "image registry did not start: $(cat "$work/imgreg.log")"
cfg=$("$TOOLS_DIR/containerd-config.sh" "$work/ctd" "$work/certs.d")
PATH="$ctd_bin:$PATH" "$ctd_bin/containerd" --config "$cfg" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 300); do crictl ctd --timeout 2s version >/dev/null 2>&1 && break; sleep 0.1; done
busybox=registry.k8s.io/e2e-test-images/busybox:1.29-2
crictl ctd pull "$busybox" >/dev/null || die "pull $busybox failed: $(tail -20 "$work/containerd.log")"
crictl ctd pull registry.k8s.io/pause:3.10.1 >/dev/null || true

log "starting corral (cgroup root $cgroup)"
mkdir -p "$work/corral/etc/corral" "$work/corral-cni"
cat >"$work/corral-cni/10-bench.conflist" <<EOC
{"cniVersion":"1.0.0","name":"bench-$((h % 100000))","plugins":[
 {"type":"bridge","bridge":"$cbridge","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.190.$((h % 250)).0/24"}]],"dataDir":"$work/corral-cni/ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}},{"type":"loopback"}]}
EOC
printf '[cni]\nconf_dir = "%s"\n' "$work/corral-cni" >"$work/corral/etc/corral/corral.toml"
unshare --uts -- "$work/bin/corral" init --root "$work/corral" --cgroup-root "$cgroup" --default-target "" \
	>"$work/corral.log" 2>&1 &
corral_pid=$!
for _ in $(seq 300); do crictl corral --timeout 2s version >/dev/null 2>&1 && break; sleep 0.1; done
crictl corral version >/dev/null || die "corral did not start: $(tail -20 "$work/corral.log")"

for net in node pod; do
	echo "== $n iterations, network=$net ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
	"$work/bin/cribench" -n "$n" -net "$net" -logdir "$work/logs" \
		-target "runc=unix://$(sock ctd),,$busybox,sleep" \
		-target "native=unix://$(sock corral),native,localhost/corral/host:latest,/bin/sleep"
done
