#!/usr/bin/env bash
# critest-bench.sh [N] [ROUNDS] runs `critest -benchmark` (v1.37.0) through
# Corral's CRI socket (runc handler, containerd 2.4.2 + runc 1.5.3 running as
# a Corral unit, as test/containers does) and against the same containerd's
# socket directly, in one run, and prints every median of critest's
# -benchmarking-output-dir JSON side by side with Corral's overhead.
#
# N samples per benchmark and endpoint per round (default 40; images get
# N/2), ROUNDS rounds (default 2) in the order corral, containerd,
# containerd, corral, ... so that drift in the machine's load hits both
# alike; samples of all rounds are pooled before the median. Benchmarks run
# one sample at a time (parallel 1): overhead per call is what is measured.
#
# Everything runs from a scratch dir under /var/tmp and is removed at the
# end (containerd's root, shims, mounts, its CNI bridge, Corral's cgroups);
# the raw JSON is kept in $CORRAL_BENCH_RESULTS (default
# /var/tmp/corral-bench-results/critest-<time>). Corral runs in a UTS
# namespace of its own, so no pod can rename the machine.
#
# The goal of issue 4 is at most 5% overhead on every median; the script
# prints the table and exits 0 either way (a benchmark never fails CI).
source "$(dirname "$0")/../tools/lib.sh"

n=${1:-40}
rounds=${2:-2}
ctd_bin=$("$TOOLS_DIR/containerd.sh")
critest=$("$TOOLS_DIR/critest.sh")
crictl_bin=$("$TOOLS_DIR/crictl.sh")
imgreg=$("$TOOLS_DIR/images.sh")
work=$(mktemp -d /var/tmp/corral-bench-critest.XXXXXX)
chmod 0755 "$work" # user-namespaced containers must traverse it
cgroup=corral-bench-critest-$$
results=${CORRAL_BENCH_RESULTS:-/var/tmp/corral-bench-results}/critest-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$results"
ctd=$work/ctd
ctd_sock=$ctd/state/containerd.sock
corral_sock=$work/corral/run/corral/cri.sock
reg_pid= corral_pid=

cleanup() {
	set +e
	if [ -n "$corral_pid" ]; then
		crictl "$corral_sock" rmp -fa >/dev/null 2>&1
		crictl "$ctd_sock" rmp -fa >/dev/null 2>&1
	fi
	for p in $corral_pid $reg_pid; do
		kill -TERM "$p" 2>/dev/null
		for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	# containerd (KillMode=process) leaves its shims: ours name $ctd.
	for p in $(grep -l -s -F "$ctd/" /proc/[0-9]*/cmdline | cut -d/ -f3); do kill -KILL "$p" 2>/dev/null; done
	awk -v w="$work" '$2 == w || index($2, w "/") == 1 {print $2}' /proc/self/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	[ -f "$ctd/cni/bridge" ] && ip link del "$(cat "$ctd/cni/bridge")" 2>/dev/null
	for c in /sys/fs/cgroup/*/"$cgroup"; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

crictl() { local s=$1; shift; "$crictl_bin" --config /dev/null -r "unix://$s" -i "unix://$s" -t 60s "$@"; }

log "building corral"
mkdir -p "$work/bin"
(cd "$REPO_ROOT" && for b in corral corral-agent corralctl; do CGO_ENABLED=0 go build -o "$work/bin/$b" "./cmd/$b"; done)

log "starting the image registry"
"$imgreg" -addr 127.0.0.1:0 -certs-dir "$work/certs.d" -addr-file "$work/registry.addr" >"$work/imgreg.log" 2>&1 &
reg_pid=$!
for _ in $(seq 600); do [ -s "$work/registry.addr" ] && break; sleep 0.1; done
[ -s "$work/registry.addr" ] || die "image registry did not start: $(cat "$work/imgreg.log")"

# containerd's CNI network of its own (containerd-config.sh), then deploy's
# config and unit with their standard paths moved into $ctd, the way
# test/containers renders them.
"$TOOLS_DIR/containerd-config.sh" "$ctd" "$work/certs.d" >/dev/null
sed -e "s|/var/lib/containerd|$ctd/root|g" -e "s|/run/containerd|$ctd/state|g" \
	-e "s|/etc/containerd/certs.d|$work/certs.d|g" -e "s|/etc/cni/net.d|$ctd/cni/net.d|g" \
	-e "s|/usr/local/sbin/runc|$ctd_bin/runc|g" -e "s|/var/run/nri/nri.sock|$ctd/nri.sock|g" \
	-e "s|/opt/containerd|$ctd/opt|g" "$REPO_ROOT/deploy/containerd/config.toml" >"$ctd/containerd.toml"
mkdir -p "$work/units" "$work/corral/etc/corral"
sed -e '/^ExecStartPre=-\/sbin\/modprobe overlay$/d' \
	-e "s|^ExecStart=.*|ExecStart=$ctd_bin/containerd --config $ctd/containerd.toml|" \
	-e "s|^\[Service\]\$|[Service]\nEnvironment=PATH=$ctd_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|" \
	"$REPO_ROOT/deploy/units/containerd.service" >"$work/units/containerd.service"
cat >"$work/corral/etc/corral/corral.toml" <<EOC
[cri]
default_handler = "runc"

[handlers.native]
backend = "native"

[handlers.runc]
backend = "containerd"
address = "$ctd_sock"
EOC

log "starting corral (cgroup root $cgroup) with containerd $("$ctd_bin/containerd" --version | awk '{print $3}') as a unit"
unshare --uts -- "$work/bin/corral" init --root "$work/corral" --unit-dir "$work/units" --cgroup-root "$cgroup" \
	>"$work/corral.log" 2>&1 &
corral_pid=$!
ctl() { "$work/bin/corralctl" --root "$work/corral" "$@"; }
for _ in $(seq 300); do ctl list-units >/dev/null 2>&1 && break; sleep 0.1; done
ctl start containerd.service || die "containerd.service did not start: $(tail -30 "$work/corral.log")"
ready=
for _ in $(seq 600); do
	if crictl "$corral_sock" info 2>/dev/null | jq -e '.status.conditions[] | select(.type == "corral.io/handler/runc") | .status' >/dev/null; then
		ready=1
		break
	fi
	sleep 0.1
done
[ -n "$ready" ] || die "Corral's runc handler did not become ready: $(tail -30 "$work/corral.log")"

staging=gcr.io/k8s-staging-cri-tools
cat >"$work/params.yaml" <<EOC
containersNumber: $n
containersNumberParallel: 1
podsNumber: $n
podsNumberParallel: 1
imagesNumber: $((n / 2 > 0 ? n / 2 : 1))
imagesNumberParallel: 1
imagePullingBenchmarkImage: $staging/test-image-latest:latest
imageListingBenchmarkImages:
- $staging/test-image-1:latest
- $staging/test-image-2:latest
- $staging/test-image-3:latest
EOC
# Warm both paths: the images the container benchmarks use are in the store
# before the first timed sample of either endpoint.
crictl "$ctd_sock" pull registry.k8s.io/e2e-test-images/busybox:1.29-2 >/dev/null
crictl "$ctd_sock" pull registry.k8s.io/pause:3.10.1 >/dev/null

run() { # run TARGET SOCKET ROUND
	local out=$results/$1-$3
	mkdir -p "$out"
	log "round $3: critest -benchmark against $1"
	# critest keeps a symlink to itself and pod log dirs in TMPDIR (/tmp is not safe here).
	if ! TMPDIR=$work PATH="$(dirname "$critest"):$ctd_bin:$PATH" "$critest" -benchmark \
		--runtime-endpoint "unix://$2" --image-endpoint "unix://$2" \
		-benchmarking-params-file "$work/params.yaml" -benchmarking-output-dir "$out" \
		>"$out/critest.log" 2>&1; then
		log "critest -benchmark against $1 failed (log kept in $out/critest.log):"
		tail -30 "$out/critest.log" >&2
		exit 1
	fi
	crictl "$2" rmp -fa >/dev/null 2>&1 || true
}
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		run corral "$corral_sock" "$r"
		run containerd "$ctd_sock" "$r"
	else
		run containerd "$ctd_sock" "$r"
		run corral "$corral_sock" "$r"
	fi
done

# CORRAL_BENCH_EXTRA: a command run with the two sockets while the node is
# still up (e.g. a per-call latency probe: -direct SOCK -corral SOCK).
if [ -n "${CORRAL_BENCH_EXTRA:-}" ]; then
	log "running $CORRAL_BENCH_EXTRA"
	$CORRAL_BENCH_EXTRA -direct "$ctd_sock" -corral "$corral_sock" | tee "$results/extra.txt"
fi

log "medians (raw JSON in $results)"
python3 - "$results" "$n" "$rounds" <<'EOP'
import glob, json, os, statistics, sys
res, n, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
files = ["pod_benchmark_data.json", "container_benchmark_data.json",
         "image_lifecycle_benchmark_data.json", "image_listing_benchmark_data.json"]
def samples(target, f):
    ops, data = None, {}
    for d in sorted(glob.glob(os.path.join(res, target + "-*"))):
        p = os.path.join(d, f)
        if not os.path.exists(p):
            continue
        j = json.load(open(p))
        ops = j["operationsNames"]
        for dp in j["datapoints"]:
            for name, ns in zip(ops, dp["operationsDurationsNs"]):
                data.setdefault(name, []).append(ns / 1e6)
    return ops or [], data
print(f"critest -benchmark, {n} samples x {rounds} rounds per endpoint (images: half), parallel 1")
print()
print("| benchmark | operation | samples | containerd median (ms) | Corral median (ms) | overhead |")
print("|---|---|---|---|---|---|")
worst = None
for f in files:
    ops, c = samples("corral", f)
    _, d = samples("containerd", f)
    for op in ops:
        if not c.get(op) or not d.get(op):
            continue
        mc, md = statistics.median(c[op]), statistics.median(d[op])
        ov = (mc - md) / md * 100 if md else 0.0
        if worst is None or ov > worst[0]:
            worst = (ov, op)
        print(f"| {f.replace('_benchmark_data.json', '')} | {op} | {len(c[op])}/{len(d[op])} | {md:.2f} | {mc:.2f} | {ov:+.1f}% |")
if worst:
    print()
    print(f"largest overhead: {worst[1]} {worst[0]:+.1f}% (goal: <= 5% on every median)")
EOP
