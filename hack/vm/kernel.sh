#!/usr/bin/env bash
# kernel.sh ensures Debian's cloud kernel for VM pods, unpacked, and prints
# its directory. The kernel outlives guest-agent edits, so it has its own
# cache, /var/cache/corral-test/vm-kernel-<kver>/, holding:
#   vmlinux   the uncompressed PVH ELF cut out of vmlinuz at the LZ4 magic
#             (booting it instead of the bzImage saves ~200 ms under TCG)
#   root/     the package's /lib/modules/<kver> with modules.dep (depmod)
#   kver      the kernel version
source "$(dirname "$0")/../tools/lib.sh"

apt_ensure lz4 cpio kmod e2fsprogs qemu-system-x86 xz-utils zstd
kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kpkg" ] || die "no linux-image-cloud-amd64 in the apt lists (apt-get update?)"
kver=${kpkg#linux-image-}
dir=$(cache_dir vm-kernel "$kver")
lock_dir "$dir"
if cached "$dir"; then
	echo "$dir"
	exit 0
fi
build_start "$dir"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/corral-vm-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "apt-get download $kpkg"
(cd "$work" && apt-get download -q "$kpkg" >&2)
dpkg-deb -x "$work"/linux-image-*.deb "$work/x"
mkdir -p "$dir/root/lib/modules"
mv "$work/x/lib/modules/$kver" "$dir/root/lib/modules/"
depmod -b "$dir/root" "$kver"
# The bzImage carries the kernel ELF as an LZ4 (legacy frame) payload; lz4
# stops at the end of its frame and complains about the trailer, which is
# expected, so success is judged by the ELF magic of the output.
vmlinuz="$work/x/boot/vmlinuz-$kver"
off=$(grep -obUaP '\x02\x21\x4c\x18' "$vmlinuz" | head -1 | cut -d: -f1)
[ -n "$off" ] || die "no LZ4 magic in $vmlinuz"
tail -c +$((off + 1)) "$vmlinuz" | lz4 -dc >"$dir/vmlinux" 2>/dev/null || true
[ "$(head -c 4 "$dir/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || die "$vmlinuz: LZ4 payload at $off is not an ELF"
echo "$kver" >"$dir/kver"
build_done "$dir"
echo "$dir"
