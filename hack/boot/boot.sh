#!/usr/bin/env bash
# Boots the Debian test image with systemd and with Corral as init and prints
# the comparison (boot time to multi-user.target, PID 1 RSS, power-off time,
# persistence across an ACPI power-off). The same test runs in `make test`;
# this wrapper only makes its output visible and keeps a copy (results in
# /var/cache/corral-test/boot-results.txt, console logs of the last run in
# /var/cache/corral-test/boot-logs/).
#   hack/boot/boot.sh            both inits
#   hack/boot/boot.sh systemd    one of them
set -euo pipefail
cd "$(dirname "$0")/../.."
run=TestBoot
[ $# -gt 0 ] && run="TestBoot/$1"
make -s build
results=${CORRAL_BOOT_RESULTS:-/var/cache/corral-test/boot-results.txt}
mkdir -p "$(dirname "$results")"
export CORRAL_BOOT_LOGS=${CORRAL_BOOT_LOGS:-/var/cache/corral-test/boot-logs}
CORRAL_BOOT_RESULTS=$results go test -tags integration -count=1 -v -timeout 20m -run "$run" ./test/boot/
