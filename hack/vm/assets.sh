#!/usr/bin/env bash
# assets.sh builds what VM pods boot and copies it to OUT (default build/vm):
#   vmlinux       Debian's cloud kernel, uncompressed PVH ELF (hack/vm/kernel.sh)
#   initrd.img    cpio: the guest agent (cmd/corral-guest) as /init, the
#                 virtio/vsock/virtiofs/overlay .ko files it loads in
#                 dependency order (/modules.order), /dev/console
#   busybox.ext4  the read-only root image of the reserved VM image
#                 localhost/corral/busybox:latest (static busybox + applets)
# The result is cached in /var/cache/corral-test/vm-<hash>/, where <hash>
# covers this script, the guest sources, go.sum and the kernel version, so
# an unchanged tree costs nothing and any guest edit rebuilds (seconds).
# Usage: hack/vm/assets.sh [OUT]    prints OUT
source "$(dirname "$0")/../tools/lib.sh"

out=${1:-$REPO_ROOT/build/vm}
kdir=$("$TOOLS_DIR/../vm/kernel.sh")
kver=$(cat "$kdir/kver")
bb=$("$TOOLS_DIR/busybox.sh")
cd "$REPO_ROOT"
# Modules the guest needs: the virtio-mmio transport (microvm), the block,
# console and net drivers, vsock, virtiofs, overlay and the power button.
# The boot set is loaded before the agent serves; the rest in the
# background (guest/boot.go).
boot_mods="virtio_mmio virtio_blk virtio_console overlay"
later_mods="virtio_net vmw_vsock_virtio_transport virtiofs button evdev"
key=$({ cat hack/vm/assets.sh hack/vm/kernel.sh go.sum; find guest cmd/corral-guest -name '*.go' ! -name '*_test.go' | sort | xargs cat; echo "$kver $boot_mods $later_mods"; sha256sum "$bb"; } | sha256sum | cut -c1-12)
dir=$(cache_dir vm "$key")
lock_dir "$dir"
if ! cached "$dir"; then
	build_start "$dir"
	work=$(mktemp -d "${TMPDIR:-/var/tmp}/corral-vm-assets.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	ird=$work/initrd
	mkdir -p "$ird"/{dev,proc,sys,run,lib/modules}
	mknod -m 600 "$ird/dev/console" c 5 1
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$ird/init" ./cmd/corral-guest
	# modules.order is both sets in dependency order; modules.boot its
	# first part, modules.later the rest.
	: >"$ird/modules.order"
	for m in $boot_mods -- $later_mods; do
		if [ "$m" = -- ]; then echo -- ; continue; fi
		modprobe -d "$kdir/root" -S "$kver" --show-depends "$m" | awk '$1=="insmod" {print $2}'
	done | awk '$0=="--" || !seen[$0]++' | while read -r ko; do
		if [ "$ko" = -- ]; then echo -- >>"$ird/modules.order"; continue; fi
		b=$(basename "$ko")
		case "$b" in
		*.ko.xz) xz -dc "$ko" >"$ird/lib/modules/${b%.xz}"; b=${b%.xz} ;;
		*.ko.zst) zstd -qdc "$ko" >"$ird/lib/modules/${b%.zst}"; b=${b%.zst} ;;
		*) cp "$ko" "$ird/lib/modules/" ;;
		esac
		echo "$b" >>"$ird/modules.order"
	done
	sed '/^--$/,$d' "$ird/modules.order" >"$ird/modules.boot"
	sed '1,/^--$/d' "$ird/modules.order" >"$ird/modules.later"
	sed -i '/^--$/d' "$ird/modules.order"
	log "initrd: $(wc -l <"$ird/modules.boot")+$(wc -l <"$ird/modules.later") modules, guest agent $(stat -c %s "$ird/init") bytes"
	# Uncompressed: unpacking is cheaper than decompressing under TCG.
	(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$dir/initrd.img"

	rfs=$work/busybox
	mkdir -p "$rfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run}
	chmod 1777 "$rfs/tmp"
	cp "$bb" "$rfs/bin/busybox"
	for a in $("$bb" --list-full); do
		[ "$a" = bin/busybox ] || ln -sf /bin/busybox "$rfs/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rfs/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\n' >"$rfs/etc/group"
	echo corral-vm >"$rfs/etc/hostname"
	mkfs.ext4 -q -F -L busybox -O ^has_journal -d "$rfs" "$dir/busybox.ext4" 16M >&2

	cp "$kdir/vmlinux" "$dir/vmlinux"
	echo "$kver" >"$dir/kver"
	cp "$ird/modules.order" "$dir/"
	build_done "$dir"
fi
mkdir -p "$out"
for f in vmlinux initrd.img busybox.ext4 kver; do
	ln -f "$dir/$f" "$out/$f" 2>/dev/null || cp "$dir/$f" "$out/$f"
done
echo "$out"
