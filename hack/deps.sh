#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine. Idempotent and
# quiet when everything is present.
set -euo pipefail
need=()
[ -x /usr/bin/python3 ] || need+=(python3)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v socat >/dev/null || need+=(socat)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
# The boot test (test/boot, hack/boot): QEMU, the image and its initramfs.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v debootstrap >/dev/null || need+=(debootstrap)
{ [ -x /bin/busybox ] && /bin/busybox --list | grep -x switch_root >/dev/null && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || need+=(kmod)
# VM pods (hack/vm): the kernel's LZ4 payload is unpacked to a PVH vmlinux.
command -v lz4 >/dev/null || need+=(lz4)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
