#!/usr/bin/env bash
# recover.sh [UNITS...] measures, for each count of loaded units (default
# 10 1000 10000), the time from `kill -9` of the core (corral-agent under
# `corral init`) to the CRI socket answering Version again on a fresh
# connection, and to the API answering (after re-adoption; includes
# corralctl's start). Each count runs test/chaos TestRecoveryTime: N unit
# files loaded, of which CORRAL_RECOVER_RUNNING (default 100) run as `sleep`
# services wanted by one target, 5 kills, and a check that every running
# service kept its process. Then the same with `corralctl daemon-reexec`
# instead of kill -9 (TestReexecTime: from the start of the command to a
# CRI Version answered by the re-executed core, and to the command's end).
# Prints one "recover:" and one "reexec:" line per count (milliseconds).
set -euo pipefail
cd "$(dirname "$0")/../.."
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 1000 10000)
running=${CORRAL_RECOVER_RUNNING:-100}
ulimit -n 1048576 2>/dev/null || true
for n in "${counts[@]}"; do
	CORRAL_RECOVER_UNITS=$n CORRAL_RECOVER_RUNNING=$running CORRAL_RECOVER_ROUNDS=5 \
		go test -tags integration -count=1 -timeout 30m -run '^(TestRecoveryTime|TestReexecTime)$' ./test/chaos -v 2>&1 |
		grep -E '^(recover|reexec):|^(--- FAIL|FAIL)' || true
done
