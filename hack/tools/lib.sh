# Shared helpers for hack/tools/*.sh. Sourced, never run.
#
# Every tool script follows one contract so that `make test` targets and CI can
# compose them: it is idempotent, logs to stderr, prints only the path of what
# it provides on stdout, and keeps its result in
# $CORRAL_TOOLS_CACHE/<tool>-<version>/ (default /var/cache/corral-test). A
# cache directory counts as complete only when its ".done" stamp exists, so an
# interrupted build is redone instead of reused. The stamp holds the build time
# in seconds, which all.sh and docs/TOOLS.md report.

set -euo pipefail

CORRAL_TOOLS_CACHE=${CORRAL_TOOLS_CACHE:-/var/cache/corral-test}
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TOOLS_DIR/../.." && pwd)

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# cache_dir TOOL VERSION prints the cache directory of one tool version.
cache_dir() { printf '%s/%s-%s\n' "$CORRAL_TOOLS_CACHE" "$1" "$2"; }

# lock_dir DIR holds an exclusive lock on DIR's build for the rest of the
# script: `go test ./...` runs packages in parallel, so two tests may ask for
# the same tool on a fresh machine, and the second must wait for the first
# build rather than race it. Call it in the script's own shell, not in $(...).
lock_dir() {
	local fd
	mkdir -p "$(dirname "$1")"
	exec {fd}>"$1.lock"
	flock "$fd"
}

# cached DIR succeeds when DIR holds a completed build.
cached() { [ -f "$1/.done" ]; }

# build_start DIR empties DIR for a fresh build and starts the clock.
build_start() {
	rm -rf "$1"
	mkdir -p "$1"
	BUILD_T0=$(date +%s)
}

# build_done DIR stamps DIR complete with the elapsed build time.
build_done() {
	local secs=$(($(date +%s) - BUILD_T0))
	echo "$secs" >"$1/.done"
	log "built $(basename "$1") in ${secs}s"
}

# build_seconds DIR prints the recorded build time of a cached tool.
build_seconds() { cat "$1/.done" 2>/dev/null || echo "?"; }

# apt_ensure PKG... installs the Debian packages that are missing, quietly.
apt_ensure() {
	local need=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
	done
	[ ${#need[@]} -eq 0 ] && return 0
	log "apt-get install ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Wait for a concurrent apt/dpkg (another tool script, deps.sh) instead
	# of failing on its lock.
	local apt=(apt-get -o DPkg::Lock::Timeout=300 -y -qq)
	"${apt[@]}" install "${need[@]}" >&2 || {
		"${apt[@]}" update >&2
		"${apt[@]}" install "${need[@]}" >&2
	}
}

# scratch_module DIR NAME writes a go.mod for a throwaway build module, so that
# tool builds never touch the repo's go.mod.
scratch_module() {
	mkdir -p "$1"
	printf 'module %s\n\ngo 1.26.0\n' "$2" >"$1/go.mod"
}
