#!/bin/sh
# Builds the rig's base initramfs (gzip'd newc cpio): busybox-static with all its applets, the
# rig's /init and /kfw/lib.sh, and a subset of the unpacked Debian kernel's modules plus
# kfwtest.ko, with depmod run on the image so busybox modprobe (which reads modules.dep and
# modules.alias) and kairos-firmware detect see a consistent module tree.
#
# usage: mkinitramfs.sh OUT.cpio.gz KERNEL_DIR KFWTEST_KO MODULE...
#   KERNEL_DIR  the tree tests/fixtures/debian-kernel.sh unpacked (has lib/modules/<release>)
#   MODULE      module names; their dependencies and softdeps come along (modprobe -D).
# The per-boot files (scenario, kairos-firmware, /dev/console) are a second cpio that
# tests/qemu/rig.go appends: the kernel unpacks concatenated archives in order.
set -eu
out=${1:?usage: $0 OUT KERNEL_DIR KFWTEST_KO MODULE...}
kdir=${2:?missing KERNEL_DIR}
ko=${3:?missing KFWTEST_KO}
shift 3
here=$(cd "$(dirname "$0")" && pwd)
release=$(ls "$kdir/lib/modules")
[ "$(echo "$release" | wc -w)" = 1 ] || { echo "mkinitramfs.sh: want one release in $kdir/lib/modules, found: $release" >&2; exit 1; }
busybox=$(command -v busybox)
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || {
	echo "mkinitramfs.sh: $busybox is not static (install busybox-static)" >&2
	exit 1
}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/proc" "$root/sys" \
	"$root/dev" "$root/run" "$root/tmp" "$root/mnt" "$root/sysroot" "$root/etc" \
	"$root/lib/firmware" "$root/kfw"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cp "$here/guest/init" "$root/init"
cp "$here/guest/lib.sh" "$root/kfw/lib.sh"
cp "$here/guest/after-pivot" "$root/kfw/after-pivot"
chmod 0755 "$root/init"

mods="$kdir/lib/modules/$release"
dest="$root/lib/modules/$release"
mkdir -p "$dest/extra"
for m in "$@"; do
	# modprobe -D prints "insmod /path" for each module to load (deps and softdeps first) and
	# "builtin name" for built-in ones.
	modprobe -d "$kdir" -S "$release" -D "$m" | while read -r kind path; do
		[ "$kind" = insmod ] || continue
		rel=${path#"$mods/"}
		mkdir -p "$dest/$(dirname "$rel")"
		cp "$path" "$dest/$rel"
	done
done
cp "$ko" "$dest/extra/kfwtest.ko"
cp "$mods/modules.builtin" "$mods/modules.builtin.modinfo" "$mods/modules.order" "$dest/"
depmod -b "$root" "$release"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$out.tmp"
mv "$out.tmp" "$out"
