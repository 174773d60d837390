#!/usr/bin/env bash
# Builds the Debian bookworm boot-test image and prints the directory that
# holds it. The result is cached under /var/cache/corral-test/boot-<hash>/,
# where <hash> covers this script, the initramfs init and the package list,
# so a warm CI cache costs nothing and any change rebuilds.
#
# The directory holds:
#   rootfs.img   raw ext4 root filesystem (the kernel's modules included)
#   vmlinuz      Debian's linux-image-*-cloud-amd64 kernel
#   initrd.img   a tiny busybox initramfs: loads the virtio and ext4 modules,
#                sets up eth0 for QEMU user networking, mounts /dev/vda and
#                switch_roots to init= (see init.sh)
#   id_ed25519   the ssh key that root's authorized_keys accepts
#   kver         the kernel version
#
# Usage: hack/boot/image.sh            (build if needed, print the dir)
#        CORRAL_BOOT_CACHE=/dir hack/boot/image.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CORRAL_BOOT_CACHE:-/var/cache/corral-test}
suite=bookworm

# Packages on top of debootstrap's minbase. systemd is the baseline init; the
# rest is what the boot test checks (ssh, cron, rsyslog, nginx) and what a
# getty and a login need.
packages=(
	systemd systemd-sysv udev dbus
	openssh-server cron rsyslog nginx-light
	iproute2 procps kmod util-linux login passwd
	ca-certificates less
)

log() { printf '%s image: %s\n' "$(date +%T)" "$*" >&2; }

hash=$(cat "$here/image.sh" "$here/init.sh" <(printf '%s\n' "$suite" "${packages[@]}") | sha256sum | cut -c1-12)
out=$cache/boot-$hash
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86 qemu-utils)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx switch_root || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || need+=(kmod)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
# busybox-static replaces the dynamic busybox; make sure the one we copy is static.
if ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' && ! ldd /bin/busybox 2>&1 | grep -q 'not a dynamic'; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq busybox-static >/dev/null
fi

# The mirror is the machine's own (deb822 or one-line format).
mirror=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
	mirror=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
fi
mirror=${mirror:-http://deb.debian.org/debian}

start=$(date +%s)
mkdir -p "$cache"
work=$(mktemp -d "$cache/boot-build.XXXXXX")
trap 'umount -R "$work/rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
root=$work/rootfs

log "debootstrap $suite from $mirror"
mkdir -p "$cache/boot-debs"
include=$(IFS=,; echo "${packages[*]}")
debootstrap --variant=minbase --include="$include" --cache-dir="$cache/boot-debs" \
	"$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
	tail -30 "$work/debootstrap.log" >&2
	exit 1
}
log "debootstrap done after $(($(date +%s) - start))s"

# Kernel: the cloud flavour, from the host's apt lists.
kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
kver=${kpkg#linux-image-}
log "kernel $kpkg"
mkdir -p "$work/kernel"
(cd "$work" && apt-get download -q "$kpkg" >/dev/null)
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
mkdir -p "$root/lib/modules"
cp -a "$work/kernel/lib/modules/$kver" "$root/lib/modules/"
depmod -b "$root" "$kver"

# Configuration: hostname, fstab, network names, root login.
echo corral-boot >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcorral-boot\n' >"$root/etc/hosts"
cat >"$root/etc/fstab" <<'EOF'
# <file system> <mount point> <type> <options> <dump> <pass>
/dev/vda / ext4 defaults,errors=remount-ro 0 1
tmpfs /tmp tmpfs nosuid,nodev,size=64m 0 0
EOF
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
echo 'root:corral' | chroot "$root" chpasswd
ssh-keygen -q -t ed25519 -N '' -C corral-boot-test -f "$work/id_ed25519"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
# Faster ssh logins under TCG: no reverse DNS.
echo 'UseDNS no' >"$root/etc/ssh/sshd_config.d/corral-test.conf"
# A fixed machine-id would make every test VM the same machine; systemd and
# Corral both create one at boot when the file is empty.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# systemd-firstboot would prompt on the console when machine-id is empty.
ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin

# The root filesystem image. No loop mount: mkfs.ext4 -d copies the tree.
log "rootfs.img"
mkfs.ext4 -q -F -L corral-root -d "$root" "$work/rootfs.img" 2G

# The initramfs: static busybox, the modules needed to reach the root
# filesystem and the network (with their dependencies, in load order), and
# init.sh.
log "initrd.img"
ird=$work/initrd
mkdir -p "$ird"/{bin,dev,proc,sys,root,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
install -m 0755 "$here/init.sh" "$ird/init"
mods="virtio_pci virtio_mmio virtio_blk virtio_net ext4 button evdev"
: >"$ird/modules.order"
for m in $mods; do
	modprobe -d "$root" -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1=="insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	b=$(basename "$ko")
	case "$b" in
	*.ko.xz) xz -dc "$ko" >"$ird/lib/modules/${b%.xz}"; b=${b%.xz} ;;
	*.ko.zst) zstd -qdc "$ko" >"$ird/lib/modules/${b%.zst}"; b=${b%.zst} ;;
	*) cp "$ko" "$ird/lib/modules/" ;;
	esac
	echo "$b" >>"$ird/modules.order"
done
(cd "$ird" && find . | cpio -o -H newc --quiet) >"$work/initrd.img"

cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
echo "$kver" >"$work/kver"
mkdir -p "$out"
mv "$work/rootfs.img" "$work/initrd.img" "$work/vmlinuz" "$work/kver" "$work/id_ed25519" "$work/id_ed25519.pub" "$out/"
cp "$ird/modules.order" "$out/"
echo "built in $(($(date +%s) - start))s" >"$out/done"
log "done in $(($(date +%s) - start))s: $out"
echo "$out"
