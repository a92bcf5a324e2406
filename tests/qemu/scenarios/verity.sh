# shellcheck shell=sh
# Scenario verity: signed GPT DDIs laid out as AuroraBoot's sysext output (erofs root +
# root-verity + root-verity-sig) in the Kairos store, under firmware.signatures: required. The
# real root is on /dev/vda (ext4); tests/qemu_verity_test.go put there, enabled for the active
# boot:
#   fw-kfwtest        both kfwtest firmware files and late.bin (auto selects it)
#   fw-tree-tampered  one byte of its hash tree flipped (a rule selects it)
#   fw-data-tampered  one byte of a firmware file flipped inside its erofs data partition, the
#                     hash tree and signature left as they were (a rule selects it)
#   fw-meta-tampered  one byte of its erofs superblock flipped (a rule selects it)
# After the merge the scenario changes a byte of fw-kfwtest's late.bin in the store, at the
# offset /kfw/verity/late-offset gives: dm-verity must refuse that block when it is read.
# The signing certificate comes as /kfw/verity/db.crt; it goes to /run/verity.d, where immucore
# puts the Secure Boot db certificates. There is no udev, no dmsetup, no veritysetup: what
# device-mapper made is read from sysfs and /proc/self/mountinfo.
. /kfw/lib.sh

kfw_find_kfwtest
drivers() { kfw_kfwtest_drivers "$1"; }
present() { if [ -e "$1" ]; then echo present; else echo absent; fi; }

# Every device-mapper device: "dm-N NAME ro=R MAJ:MIN slaves=LOOP...", then per slave
# "dm-N loopK MAJ:MIN BACKING OFFSET SIZELIMIT ro=R".
dm_devices() {
	for d in /sys/block/dm-*; do
		[ -e "$d/dm/name" ] || continue
		n=${d##*/}
		kfw_result "$1.dm" "$n $(cat "$d/dm/name") ro=$(cat "$d/ro") $(cat "$d/dev") slaves=$(ls "$d/slaves" | tr '\n' ' ')"
		for s in "$d"/slaves/*; do
			s=${s##*/}
			kfw_result "$1.slave" "$n $s $(cat "/sys/block/$s/dev") $(cat "/sys/block/$s/loop/backing_file") $(cat "/sys/block/$s/loop/offset") $(cat "/sys/block/$s/loop/sizelimit") ro=$(cat "/sys/block/$s/ro")"
		done
	done
}
no_dm() {
	for d in /sys/block/dm-*; do
		[ -e "$d" ] && return 1
	done
	return 0
}

# immucore's part: the real root at /sysroot, the boot state, the certificates.
mkdir -p /sysroot /run/cos /run/verity.d
mount -t ext4 /dev/vda /sysroot || exit 10
touch /run/cos/active_mode /etc/initrd-release
cp /kfw/verity/db.crt /run/verity.d/db.crt || exit 11
drivers failed
# device-mapper is a module nobody has loaded: no control node in devtmpfs yet.
kfw_result before.dm-control "$(present /dev/mapper/control)"
kfw_result before.dm-mod "$(present /sys/module/dm_mod)"

kfw_block apply kairos-firmware apply --json
drivers applied
kfw_result applied.dm-control "$(present /dev/mapper/control)"
kfw_result applied.dm-verity "$(present /sys/module/dm_verity)"
dm_devices applied
# "MAJ:MIN MOUNTPOINT FSTYPE SOURCE" of the image mounts (the fields after the "-" separator).
kfw_block applied.mountinfo awk '$5 ~ "^/run/kairos-firmware/images/" { for (i = 7; i < NF; i++) if ($i == "-") { print $3, $5, $(i + 1), $(i + 2); break } }' /proc/self/mountinfo
# Reads through the verity device: the good image's file; then late.bin, after a byte of it
# changed in the store under the merged image (buffered loop I/O reads the backing file's page
# cache, so the change is what the loop device serves).
kfw_result applied.good-read "$(wc -c </run/kairos-firmware/images/fw-kfwtest/usr/lib/firmware/kfwtest/edu.bin)"
printf X | dd of=/sysroot/var/lib/kairos/extensions/fw-kfwtest.sysext.raw bs=1 seek="$(cat /kfw/verity/late-offset)" conv=notrunc 2>/dev/null
if cat /run/kairos-firmware/images/fw-kfwtest/usr/lib/firmware/kfwtest/late.bin >/dev/null 2>/tmp/read.err; then
	kfw_result changed.late-read ok
else
	kfw_result changed.late-read "failed: $(cat /tmp/read.err)"
fi
kfw_kmsg_grep "device-mapper:" | while read -r line; do kfw_result applied.kmsg "$line"; done

kfw_block unmerge kairos-firmware unmerge
# The removal is immediate when nothing holds the device (deferred otherwise): wait a little
# in case the last reference of a detached mount goes asynchronously.
kfw_wait 50 no_dm
dm_devices unmerged
kfw_result unmerged.dm-count "$(ls -d /sys/block/dm-* 2>/dev/null | wc -l)"
kfw_result unmerged.mounts "$(grep -c kairos-firmware /proc/self/mountinfo)"
for l in /sys/block/loop*; do
	b=$(cat "$l/loop/backing_file" 2>/dev/null) && kfw_result unmerged.loop "${l##*/} $b"
done
exit 0
