# shellcheck shell=sh
# Scenario escalation: the re-probe methods beyond drivers_probe, on the real kernel. The setup
# is scenario apply's (a Kairos initrd after immucore: the real root on /dev/vda with the
# extension store, fw-kfwtest enabled for the active boot), but kfwtest is loaded with a module
# parameter (kfw.kfwtest=... on the kernel command line, passed on by /init) that makes its
# devices need a stronger method than drivers_probe (tests/qemu/kfwtest/kfwtest.c):
#   degraded=1  kfwtest_edu bound at boot without its firmware (fw_loaded=0). drivers_probe
#               ignores a bound device; the plan picks rebind (unbind + drivers_probe).
#   sticky=1    a device whose probe failed fails every later probe of the same struct device
#               with -EIO: drivers_probe fails, and only usb-reenumerate (new usb_interface
#               objects) and pci-rescan (a new pci_dev) bring the devices up.
# The facts go to tests/qemu_escalation_test.go, which asserts them.
. /kfw/lib.sh

kfw_find_kfwtest
kfw_result usb "$usb"
for p in degraded sticky; do
	kfw_result "param.$p" "$(cat /sys/module/kfwtest/parameters/$p)"
done

# immucore's part: the real root at /sysroot, the boot state, and we are in an initrd.
mkdir -p /sysroot /run/cos
mount -t ext4 /dev/vda /sysroot || exit 10
touch /run/cos/active_mode /etc/initrd-release

# The boot's failure, as the inventory and the plan see it.
kfw_kfwtest_state failed
for text in "Direct firmware load for" ": probe of " "degraded: "; do
	kfw_kmsg_grep "$text" | while read -r line; do kfw_result failed.kmsg "$line"; done
done
# apply --dry-run prints the plan apply will follow (the sysroot's store and configuration):
# the re-probe lines give each device's first method and its escalation.
kfw_block dry-run kairos-firmware apply --dry-run

# What the dracut unit runs: kairos-firmware apply --sysroot /sysroot (the default in an initrd).
mark=$(kfw_kmsg_mark)
kfw_block apply kairos-firmware apply --json
kfw_kfwtest_state applied
# What the kernel logged during apply, in its order: the probes of each attempt, the sticky
# driver's view of the devices, the firmware loads, apply's own lines.
kfw_kmsg_grep_since "$mark" ": probe of " "sticky: " "degraded: " "firmware loaded: " \
	"Direct firmware load for" "kairos-firmware: " |
	while read -r line; do kfw_result applied.kmsg "$line"; done
# The report apply left for status and for the real root.
kfw_block report cat /run/kairos-firmware/report.json
exit 0
