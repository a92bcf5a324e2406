# shellcheck shell=sh
# Helpers for scenario scripts (busybox ash; `. /kfw/lib.sh` to use them), also used by /init.
#
# The console protocol the Go side (tests/qemu/rig.go) parses, one record per line on ttyS0:
#   KFW-RESULT key=value           a fact; a key may repeat (Result.Values[key] keeps all)
#   KFW-BEGIN name / KFW-END name  the lines between are Result.Blocks[name] (JSON, logs)
#   KFW-SETUP-FAILED why           /init could not prepare the guest; the scenario did not run
#   KFW-DONE rc=N                  the scenario's exit code; the guest powers off after it

# kfw_result KEY VALUE...: report one fact.
kfw_result() {
	local k=$1
	shift
	echo "KFW-RESULT $k=$*"
}

# kfw_block NAME CMD...: run CMD and report its stdout as block NAME and its stderr, if any, as
# block NAME-stderr (so warnings cannot corrupt JSON); its exit code is reported as NAME-rc and
# returned.
kfw_block() {
	local n=$1 r
	shift
	echo "KFW-BEGIN $n"
	"$@" 2>/tmp/kfw-block.err
	r=$?
	echo
	echo "KFW-END $n"
	if [ -s /tmp/kfw-block.err ]; then
		echo "KFW-BEGIN $n-stderr"
		cat /tmp/kfw-block.err
		echo "KFW-END $n-stderr"
	fi
	kfw_result "$n-rc" "$r"
	return $r
}

# kfw_wait TRIES CMD...: run CMD every 0.1 s until it succeeds, at most TRIES times. Only a
# bound against hangs: every use waits for something that happens without a timing guarantee.
kfw_wait() {
	local n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		n=$((n - 1))
		usleep 100000
	done
	return 1
}

# kfw_pci_find VENDOR DEVICE: print the address (0000:00:04.0) of the first PCI device with these
# ids (4 hex digits, lowercase).
kfw_pci_find() {
	local d
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = "0x$1" ] && [ "$(cat "$d/device")" = "0x$2" ] && {
			basename "$d"
			return 0
		}
	done
	return 1
}

# kfw_usb_find VENDOR PRODUCT: print the sysfs name (1-1) of the first USB device with these ids.
kfw_usb_find() {
	local d
	for d in /sys/bus/usb/devices/*; do
		[ -f "$d/idVendor" ] || continue
		[ "$(cat "$d/idVendor")" = "$1" ] && [ "$(cat "$d/idProduct")" = "$2" ] && {
			basename "$d"
			return 0
		}
	done
	return 1
}

# kfw_driver BUS DEVICE: print the driver bound to the device, "none", or "absent" when there
# is no such device.
kfw_driver() {
	local d=/sys/bus/$1/devices/$2
	if [ -L "$d/driver" ]; then
		basename "$(readlink "$d/driver")"
	elif [ -e "$d" ]; then
		echo none
	else
		echo absent
	fi
}

# kfw_kmsg_grep TEXT: print the kernel log lines containing TEXT (fixed string), without their
# timestamps.
kfw_kmsg_grep() {
	dmesg | grep -F -- "$1" | sed 's/^\[[ 0-9.]*\] //'
}

# kfw_find_kfwtest: set edu, usb and intf to the devices the kfwtest drivers serve (QEMU's edu
# PCI device, the 2357:011e USB dongle and its interface) and report edu and intf.
kfw_find_kfwtest() {
	edu=$(kfw_pci_find 1234 11e8)
	usb=$(kfw_usb_find 2357 011e)
	intf=$usb:1.0
	kfw_result edu "$edu"
	kfw_result intf "$intf"
}

# kfw_kfwtest_drivers PHASE: report the drivers bound to both kfwtest devices now, as
# PHASE.edu-driver and PHASE.usb-intf-driver.
kfw_kfwtest_drivers() {
	kfw_result "$1.edu-driver" "$(kfw_driver pci "$edu")"
	kfw_result "$1.usb-intf-driver" "$(kfw_driver usb "$intf")"
}

# kfw_fw_loaded BUS DEVICE: print the device's kfwtest fw_loaded attribute (1: its probe loaded
# the firmware, 0: bound without it), or "none" when it has none (no kfwtest driver bound).
kfw_fw_loaded() {
	cat "/sys/bus/$1/devices/$2/fw_loaded" 2>/dev/null || echo none
}

# kfw_sysfs_ino BUS DEVICE: print the inode number of the device's sysfs directory, or "absent".
# kernfs numbers each node it creates anew, so a different number means the kernel deleted the
# struct device and made a new one (PCI remove + rescan, a USB configuration set again).
kfw_sysfs_ino() {
	stat -L -c %i "/sys/bus/$1/devices/$2" 2>/dev/null || echo absent
}

# kfw_kfwtest_state PHASE: kfw_kfwtest_drivers, plus PHASE.edu-fw_loaded,
# PHASE.usb-intf-fw_loaded, PHASE.edu-ino and PHASE.usb-intf-ino (kfw_sysfs_ino).
kfw_kfwtest_state() {
	kfw_kfwtest_drivers "$1"
	kfw_result "$1.edu-fw_loaded" "$(kfw_fw_loaded pci "$edu")"
	kfw_result "$1.usb-intf-fw_loaded" "$(kfw_fw_loaded usb "$intf")"
	kfw_result "$1.edu-ino" "$(kfw_sysfs_ino pci "$edu")"
	kfw_result "$1.usb-intf-ino" "$(kfw_sysfs_ino usb "$intf")"
}

# kfw_kmsg_mark: print how many lines the kernel log has now, for kfw_kmsg_grep_since.
kfw_kmsg_mark() {
	dmesg | wc -l
}

# kfw_kmsg_grep_since MARK TEXT...: the kernel log lines logged after kfw_kmsg_mark printed MARK
# that contain any TEXT (fixed strings), in the log's order, without their timestamps. The rig's
# log is far from filling the ring buffer, so line numbers hold.
kfw_kmsg_grep_since() {
	local mark=$1
	shift
	printf '%s\n' "$@" >/tmp/kfw-kmsg.patterns
	dmesg | tail -n "+$((mark + 1))" | grep -F -f /tmp/kfw-kmsg.patterns | sed 's/^\[[ 0-9.]*\] //'
}
