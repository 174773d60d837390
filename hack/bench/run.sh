#!/usr/bin/env bash
# Benchmarks of issue 2 (see docs/BENCHMARKS.md for the recorded figures):
#  (a) transaction over 10,000 loaded units pulling in 1,000 (Go benchmarks),
#      plus loading 10,000 unit files;
#  (b) start a target of 500 Type=simple services vs a shell loop starting
#      the same 500 processes (the floor);
#  (c) idle RSS of corral-agent with 200 units, and of the supervisor.
# Run as root from the repository: `make bench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x bin/corral ] || make build >/dev/null

echo "== (a) transaction and load (go test -bench)"
go test -run '^$' -bench 'BenchmarkTransaction1000of10000' -benchmem -count 3 ./agent/job/ | grep -E '^Benchmark'
go test -run '^$' -bench 'BenchmarkLoad10000' -benchmem -count 3 ./agent/unit/ | grep -E '^Benchmark'

tmp=$(mktemp -d)
sup=""
cleanup() {
	[ -n "$sup" ] && kill -TERM "$sup" 2>/dev/null && wait "$sup" 2>/dev/null || true
	pkill -f "^/bin/sleep 1000[0-9]" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# start_corral ROOT UNITDIR: starts the supervisor, waits for the API.
start_corral() {
	local root=$1 units=$2
	bin/corral init --root "$root" --unit-dir "$units" --cgroup-root "corral-bench-$$" >"$root/corral.log" 2>&1 &
	sup=$!
	for _ in $(seq 500); do
		bin/corralctl --root "$root" list-units >/dev/null 2>&1 && return 0
		sleep 0.02
	done
	echo "corral did not come up; log:"; cat "$root/corral.log"; exit 1
}
stop_corral() {
	kill -TERM "$sup"; wait "$sup" || true; sup=""
}
ms() { echo $(( ($2 - $1) / 1000000 )); }

echo "== (b) start 500 Type=simple services"
N=${N:-500}
root=$tmp/b; units=$root/units; mkdir -p "$units"
{
	echo "[Unit]"; echo "Description=bench target"
	for i in $(seq $N); do echo "Wants=s$i.service"; done
} >"$units/bench.target"
for i in $(seq $N); do
	printf '[Service]\nExecStart=/bin/sleep 1000%d\n' "$i" >"$units/s$i.service"
done
start_corral "$root" "$units"
t0=$(date +%s%N)
bin/corralctl --root "$root" start bench.target
t1=$(date +%s%N)
active=$(bin/corralctl --root "$root" list-units --type service --state active | grep -cE '^[[:space:]]*s[0-9]+[.]service' || true)
corral_ms=$(ms "$t0" "$t1")
echo "corral: $N services active=$active in ${corral_ms} ms"
stop_corral

t0=$(date +%s%N)
for i in $(seq $N); do /bin/sleep "1000$i" & done
t1=$(date +%s%N)
floor_ms=$(ms "$t0" "$t1")
pkill -f "^/bin/sleep 1000[0-9]" || true
wait 2>/dev/null || true
echo "shell loop (floor): $N processes in ${floor_ms} ms"
awk -v c="$corral_ms" -v f="$floor_ms" 'BEGIN { if (f > 0) printf "ratio corral/floor: %.2f\n", c / f }'

echo "== (c) idle RSS with 200 units"
root=$tmp/c; units=$root/units; mkdir -p "$units"
{
	echo "[Unit]"; echo "Description=rss target"
	for i in $(seq 200); do echo "Wants=r$i.service"; done
} >"$units/rss.target"
for i in $(seq 200); do
	printf '[Unit]\nDescription=idle %d\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n' "$i" >"$units/r$i.service"
done
start_corral "$root" "$units"
bin/corralctl --root "$root" start rss.target
sleep 7 # past the agent's idle memory trim (every 5 s)
agent=$(pgrep -P "$sup" -f corral-agent | head -1)
rss() { awk '/^VmRSS/ { printf "%.1f MiB\n", $2 / 1024 }' "/proc/$1/status"; }
echo "corral-agent (200 units loaded and active): $(rss "$agent")"
echo "corral init (supervisor): $(rss "$sup")"
stop_corral
