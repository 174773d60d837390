#!/bin/busybox sh
# The boot test's initramfs init: load the modules listed in /modules.order,
# set up eth0 for QEMU user networking (10.0.2.15/24 via 10.0.2.2; the image
# has no DHCP client or ifupdown, so both inits see the same network), mount
# root= and switch_root to init= (default /sbin/init).
#
# If the initramfs carries /stage (an extra cpio appended by the test with
# `make install DESTDIR=stage`), its tree is copied onto the root first: that
# is how the test installs Corral's binaries without rebuilding the image.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

echo "initramfs: start $(cut -d' ' -f1 /proc/uptime)"

for m in $(cat /modules.order); do
	insmod "/lib/modules/$m" 2>/dev/null
done

root=/dev/vda
init=/sbin/init
rootflags=rw
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	init=*) init=${arg#init=} ;;
	ro) rootflags=ro ;;
	rw) rootflags=rw ;;
	esac
done

i=0
while [ ! -b "$root" ] && [ $i -lt 500 ]; do
	sleep 0.01
	i=$((i + 1))
done

ip link set lo up
if ip link set eth0 up 2>/dev/null; then
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
fi

if ! mount -t ext4 -o "$rootflags" "$root" /root; then
	echo "initramfs: cannot mount $root; dropping to a shell"
	exec sh
fi

if [ -d /stage ]; then
	cp -a /stage/. /root/
	sync
fi

echo "initramfs: switch_root to $init at $(cut -d' ' -f1 /proc/uptime)"
# Like initramfs-tools: the new root gets /dev, /proc and /sys already mounted.
mount --move /dev /root/dev
mount --move /sys /root/sys
mount --move /proc /root/proc
exec switch_root /root "$init"
