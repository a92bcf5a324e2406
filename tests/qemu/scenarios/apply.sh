# shellcheck shell=sh
# Scenario apply: a Kairos initrd after immucore. The real root is on /dev/vda (ext4) with the
# Kairos extension store: /var/lib/kairos/extensions holds the images the test put there, enabled
# for the active boot through absolute links in active/ (as kairos-agent sysext enable writes
# them), cloud-config under /oem. The kfwtest probes already failed, as the spike's did.
# The test chooses what runs through kernel command line switches:
#   kfw.apply=STEP[,STEP]   extra steps around the plain apply: detect and dry-run (before it,
#                           human output), twice, unmerge (after it, in that order)
#   kfw.pivot                         switch to the real root afterwards and check from there
. /kfw/lib.sh

flag() { case " $(cat /proc/cmdline) " in *" $1 "*) return 0 ;; esac; return 1; }
param() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }
step() { case ",$(param kfw.apply)," in *",$1,"*) return 0 ;; esac; return 1; }

kfw_find_kfwtest
drivers() { kfw_kfwtest_drivers "$1"; }
# The state a second apply must leave exactly as the first did: our mounts and the firmware path.
snapshot() {
	kfw_result "$1.mounts" "$(grep -c -e kairos-firmware -e ' /sysroot/usr/' /proc/self/mountinfo)"
	kfw_block "$1.mountinfo" sh -c "grep -e kairos-firmware -e ' /sysroot/usr/' /proc/self/mountinfo | cut -d' ' -f5- | sort"
	kfw_result "$1.fwpath" "$(cat /sys/module/firmware_class/parameters/path)"
}

# immucore's part: the real root at /sysroot, the boot state, and we are in an initrd. By then
# immucore has loop-mounted the active image and mounted its overlays (/etc, /var, ...), so the
# loop and overlay modules are loaded; erofs, which only firmware images use, is not.
mkdir -p /sysroot /run/cos
modprobe -a loop overlay || exit 10
mount -t ext4 /dev/vda /sysroot || exit 10
touch /run/cos/active_mode /etc/initrd-release
drivers failed
kfw_kmsg_grep "Direct firmware load for" | while read -r line; do kfw_result failed.kmsg "$line"; done
snapshot before

if step detect; then
	kfw_block detect kairos-firmware detect --firmware-only
fi
if step dry-run; then
	kfw_block dry-run kairos-firmware apply --dry-run
	drivers after-dry-run
	snapshot after-dry-run
fi

# What the dracut unit runs: kairos-firmware apply --sysroot /sysroot (the default in an initrd).
kfw_block apply kairos-firmware apply --json
drivers applied
snapshot applied
kfw_kmsg_grep "firmware loaded:" | while read -r line; do kfw_result applied.kmsg "$line"; done
kfw_kmsg_grep "kairos-firmware: " | while read -r line; do kfw_result applied.log "$line"; done
kfw_block status kairos-firmware status --json

if step twice; then
	kfw_block apply-again kairos-firmware apply --json
	snapshot applied-again
fi
if step unmerge; then
	kfw_block unmerge kairos-firmware unmerge
	snapshot unmerged
fi

if flag kfw.pivot; then
	mkdir -p /run/kfw-pivot
	echo /sysroot >/run/kfw-pivot/root
	cat >/run/kfw-pivot/post.sh <<'POST'
. /run/kfw-pivot/lib.sh
# The real root, as systemd sees it after switch_root: the sysext-style merge is on /usr/lib,
# /run came along with our mounts, and firmware_class.path still resolves.
kfw_result post.root-os "$(. /etc/os-release; echo "$ID")"
for f in kfwtest/edu.bin rtw88/rtw8821a_fw.bin; do
	kfw_result "post.usr-lib-firmware" "$f $(wc -c </usr/lib/firmware/$f)"
done
kfw_result post.marker "$(cat /usr/lib/.systemd-sysext/extensions 2>/dev/null || ls /usr/lib/.systemd-sysext 2>&1)"
kfw_result post.fwpath "$(cat /sys/module/firmware_class/parameters/path)"
kfw_result post.report "$(test -s /run/kairos-firmware/report.json && echo present)"
# The kernel still finds the firmware after the pivot: unbind the edu device and probe again.
edu=$(kfw_pci_find 1234 11e8)
dmesg -c >/dev/null
echo "$edu" >/sys/bus/pci/drivers/kfwtest_edu/unbind
echo "$edu" >/sys/bus/pci/drivers_probe
kfw_result post.edu-driver "$(kfw_driver pci "$edu")"
kfw_kmsg_grep "firmware loaded:" | while read -r line; do kfw_result post.kmsg "$line"; done
# What kairos-firmware-boot.service runs after systemd-sysext: idempotent, nothing left to do.
kfw_block post-apply /run/kfw-pivot/kairos-firmware apply --sysroot / --json
exit 0
POST
fi
exit 0
