#!/bin/sh
# Makes a raw filesystem image of a directory, for a virtio disk of the rig (qemu.Disk).
# erofs and squashfs images are owned by root; ext4 keeps the host owners (root_owner sets /).
# usage: mkdisk.sh OUT.img DIR erofs|squashfs|ext4
set -eu
out=${1:?usage: $0 OUT.img DIR erofs|squashfs|ext4}
dir=${2:?missing DIR}
fstype=${3:?missing filesystem type}
rm -f "$out"
case $fstype in
erofs) mkfs.erofs --quiet --all-root "$out" "$dir" ;;
squashfs) mksquashfs "$dir" "$out" -quiet -no-progress -all-root -noappend ;;
ext4)
	# mke2fs -d populates the filesystem from a directory; size it at twice the content plus
	# room for the journal and metadata.
	kib=$(du -sk "$dir" | cut -f1)
	truncate -s "$((kib * 2 + 16384))k" "$out"
	mke2fs -q -F -t ext4 -E root_owner=0:0 -d "$dir" "$out"
	;;
*)
	echo "mkdisk.sh: unknown filesystem type $fstype" >&2
	exit 2
	;;
esac
