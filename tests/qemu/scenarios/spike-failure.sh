# shellcheck shell=sh
# Scenario spike-failure: the Kairos firmware spike's failure on both buses, what
# kairos-firmware detect makes of it, and the re-probes that recover once the firmware is visible.
# (kairos-io/kairos issue "spike: Investigate Firmware Patching with System Extensions in
# Kairos": a TP-Link 2357:011e whose rtw_8821au probe failed until an unbind/bind.)
#
# /init has loaded kfwtest with no firmware anywhere, so both probes already failed:
#   kfwtest_edu  on the edu PCI device        wants kfwtest/edu.bin
#   kfwtest_rtw  on USB interface <usb>:1.0   wants rtw88/rtw8821a_fw.bin (the spike's file)
# /dev/vda is an erofs image with lib/firmware/{kfwtest/edu.bin,rtw88/rtw8821a_fw.bin}.
# Every fact goes to the test as KFW-RESULT phase.key=value; tests/qemu_rig_test.go asserts.
#
# Which re-probe works, and why (the apply step relies on this):
# - PCI: writing the address to /sys/bus/pci/drivers_probe. A failed probe leaves the device
#   without a driver; drivers_probe runs device_attach() on an unbound device, which matches
#   the drivers again and calls kfwtest_edu's probe (drivers/base/bus.c, drivers_probe_store).
#   It returns success whether or not anything binds: read the driver link afterwards.
# - USB: the probe that failed is the interface's (<usb>:1.0); the device <usb> stays bound to
#   the generic "usb" driver. Writing the interface name to /sys/bus/usb/drivers_probe re-runs
#   the interface drivers' probe the same way; writing the device name would do nothing, it
#   is bound. The spike's unbind/bind of the device from drivers/usb also works, but it is
#   heavier: unbind deconfigures the device and deletes all its interfaces, bind sets the
#   configuration again, which re-creates and re-probes every interface, bound ones included.
# - Not a re-probe: `echo add > uevent` only sends an event to user space (udev would modprobe
#   a module that is already loaded); the kernel does not retry a failed probe for it.
. /kfw/lib.sh

edu=$(kfw_pci_find 1234 11e8)
usb=$(kfw_usb_find 2357 011e)
intf=$usb:1.0
kfw_result edu "$edu"
kfw_result usb "$usb"
# SourceSink's interface is vendor-specific (ff): kfwtest_rtw matches on vendor/product only.
kfw_result usb-intf-class "$(cat "/sys/bus/usb/devices/$intf/bInterfaceClass")"
# 0: request_firmware() fails at once instead of waiting on the sysfs fallback loader.
kfw_result fallback "$(cat /proc/sys/kernel/firmware_config/force_sysfs_fallback)"

drivers() {
	kfw_result "$1.edu-driver" "$(kfw_driver pci "$edu")"
	kfw_result "$1.usb-driver" "$(kfw_driver usb "$usb")"
	kfw_result "$1.usb-intf-driver" "$(kfw_driver usb "$intf")"
}

# 1. The spike's state: probes failed for missing firmware.
drivers failed
kfw_kmsg_grep "Direct firmware load for" | while read -r line; do kfw_result failed.kmsg "$line"; done
kfw_kmsg_grep ": probe of " | while read -r line; do kfw_result failed.kmsg "$line"; done
kfw_block detect-failed kairos-firmware detect --json

# 2. A synthetic "add" uevent does not re-probe.
echo add >"/sys/bus/pci/devices/$edu/uevent"
echo add >"/sys/bus/usb/devices/$intf/uevent"
drivers uevent

# 3. Make the firmware visible: mount the disk and point firmware_class.path at it. The kernel
# resolves that path in init's mount namespace, which is ours. The parameter is copied as
# written, so no trailing newline (drivers/base/firmware_loader/main.c, fw_path_para).
mkdir -p /run/fwdisk
mount -t erofs -o ro /dev/vda /run/fwdisk
kfw_result mount-rc $?
printf %s /run/fwdisk/lib/firmware >/sys/module/firmware_class/parameters/path

# 4. Re-probe the unbound devices through their bus's drivers_probe.
echo "$edu" >/sys/bus/pci/drivers_probe
kfw_result reprobe.edu-rc $?
echo "$intf" >/sys/bus/usb/drivers_probe
kfw_result reprobe.usb-rc $?
drivers reprobe
kfw_block detect-reprobed kairos-firmware detect --json

# 5. The spike's method on the whole USB device.
echo "$usb" >/sys/bus/usb/drivers/usb/unbind
drivers unbound
echo "$usb" >/sys/bus/usb/drivers/usb/bind
drivers rebound
exit 0
