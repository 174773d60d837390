#!/usr/bin/env bash
# busybox.sh ensures a static busybox for the offline test images and prints
# its path.
#
# Debian's busybox-static lacks pgrep and ipcs, which critest runs inside
# containers, so busybox is rebuilt from the Debian source package (the only
# source reachable here) with a static defconfig. `tc` is disabled because it
# does not compile against current kernel headers. About a minute on 2 cores.
source "$(dirname "$0")/lib.sh"

BUSYBOX_VERSION=${BUSYBOX_VERSION:-1.35.0}
dir=$(cache_dir busybox "$BUSYBOX_VERSION")
lock_dir "$dir"
if cached "$dir"; then
	echo "$dir/busybox"
	exit 0
fi

apt_ensure gcc make bzip2 libc6-dev
build_start "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# A private deb-src list and apt state, so the machine's apt configuration is
# neither needed nor touched. The mirror is the one the machine already uses.
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >src.list
mkdir -p lists/partial
apt=(apt-get -qq -o Dir::Etc::SourceList="$work/src.list" -o Dir::Etc::SourceParts=/dev/null
	-o Dir::State::Lists="$work/lists" -o APT::Sandbox::User=root)
log "fetching busybox source from $mirror $suite"
"${apt[@]}" update >&2
"${apt[@]}" source --download-only busybox >&2
orig=$(ls busybox_"$BUSYBOX_VERSION".orig.tar.* 2>/dev/null | head -1)
[ -n "$orig" ] || die "Debian $suite does not carry busybox $BUSYBOX_VERSION (got: $(ls))"
tar xf "$orig"
cd "busybox-$BUSYBOX_VERSION"
log "building busybox $BUSYBOX_VERSION"
make -s defconfig >"$work/make.log" 2>&1
sed -i 's/^CONFIG_TC=y/# CONFIG_TC is not set/; s/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' .config
make -s -j"$(nproc)" busybox >>"$work/make.log" 2>&1 || { tail -30 "$work/make.log" >&2; die "busybox build failed"; }
for applet in pgrep ipcs sh sleep; do
	./busybox --list | grep -qx "$applet" || die "busybox lacks $applet"
done
install -m 0755 busybox "$dir/busybox"
build_done "$dir"
echo "$dir/busybox"
