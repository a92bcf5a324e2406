// SPDX-License-Identifier: GPL-2.0
/*
 * kfwtest: two test drivers that fail their probe the way a firmware-hungry driver does when
 * its firmware file is missing, and bind once the file becomes visible to the kernel.
 *
 * kfwtest_edu binds QEMU's "edu" PCI device (1234:11e8). kfwtest_rtw binds any interface of the
 * USB device 2357:011e, the TP-Link WLAN dongle of the Kairos firmware spike (driver rtw_8821au
 * there), which the rig emulates with a configfs gadget on dummy_hcd.
 *
 * request_firmware(), not request_firmware_direct(): only the former prints the
 * "Direct firmware load for <name> failed with error -2" line the spike logged, because
 * request_firmware_direct() sets FW_OPT_NO_WARN (drivers/base/firmware_loader/main.c).
 * Debian's 6.1 has CONFIG_FW_LOADER_USER_HELPER=y but not ..._FALLBACK, so
 * /proc/sys/kernel/firmware_config/force_sysfs_fallback is 0 and request_firmware() does not
 * wait on the sysfs fallback: it fails at once with -ENOENT.
 *
 * Two module parameters, both off by default (the plain behaviour above is then unchanged),
 * make the drivers behave like the hardware that needs kairos-firmware's stronger re-probe
 * methods, so that the QEMU escalation scenario (tests/qemu/scenarios/escalation.sh) proves
 * them on a real kernel:
 *
 *   degraded=1  kfwtest_edu binds even when its firmware is missing, like r8169 without
 *               rtl_nic or i915 without its DMC firmware: the failure is logged, the driver
 *               stays bound and runs without it. Only an unbind + probe (the "rebind" method)
 *               loads the firmware once it is visible: drivers_probe ignores a bound device.
 *   sticky=1    once a probe failed on a struct device (the edu pci_dev, the dongle's
 *               usb_interface), every later probe of that same struct device fails with -EIO
 *               without requesting firmware, like hardware whose failed firmware download
 *               leaves it in a state that only a reset clears (a microcontroller waiting for
 *               the rest of an upload, a boot ROM that accepts one download per power-up).
 *               drivers_probe and rebind probe the same struct device and fail; only
 *               "usb-reenumerate" (the USB device's configuration is set again, which creates
 *               new usb_interface objects) and "pci-rescan" (remove + rescan, a new pci_dev)
 *               bring the device up.
 *
 * Each bound device has a sysfs attribute fw_loaded (driver dev_groups): 1 when its probe
 * loaded the firmware, 0 when it runs without it (degraded).
 */
#include <linux/device.h>
#include <linux/firmware.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/pci.h>
#include <linux/usb.h>

#define EDU_FIRMWARE "kfwtest/edu.bin"
#define RTW_FIRMWARE "rtw88/rtw8821a_fw.bin"

static bool opt_degraded;
module_param_named(degraded, opt_degraded, bool, 0444);
MODULE_PARM_DESC(degraded, "kfwtest_edu binds without its firmware (fw_loaded=0), like r8169 without rtl_nic");

/* module_param_cb, not module_param: the latter's type check declares __check_sticky, a name
 * include/linux/fs.h already gives a function. */
static bool opt_sticky;
module_param_cb(sticky, &param_ops_bool, &opt_sticky, 0444);
__MODULE_PARM_TYPE(sticky, "bool");
MODULE_PARM_DESC(sticky, "after a failed probe, the same struct device fails every later probe with -EIO until it is re-created");

/* The state of a bound device, its drvdata (devm: freed when the driver unbinds). */
struct kfwtest_state {
	bool fw_loaded;
};

static ssize_t fw_loaded_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct kfwtest_state *s = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%d\n", s && s->fw_loaded);
}
static DEVICE_ATTR_RO(fw_loaded);

static struct attribute *kfwtest_attrs[] = {
	&dev_attr_fw_loaded.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kfwtest);

/*
 * sticky: the struct devices whose probe failed ("poisoned").
 *
 * A failed probe leaves nothing on the device to tag it with: really_probe() releases the
 * probe's devres and clears drvdata when probe fails (drivers/base/dd.c). So the pointers are
 * kept here, and two rules keep a comparison from ever meeting a freed or reused struct device:
 *
 *  - each entry holds a reference (get_device), so the memory cannot be freed, and so cannot
 *    be reused by a new device, while the pointer is in the list;
 *  - a bus notifier drops the entry (and the reference) at BUS_NOTIFY_DEL_DEVICE, which
 *    device_del() sends first thing, while its caller still holds its own reference
 *    (drivers/base/core.c). That is the moment the device stops being the hardware's current
 *    object: pci_stop_and_remove_bus_device() for PCI, usb_disable_device() deleting the
 *    interfaces when the USB device is deconfigured.
 *
 * A probe racing with device_del() could poison the device after its DEL notification; the
 * reference then keeps the pointer valid (no false match with a new device at the same
 * address) and the entry is dropped at module unload. Nothing else is locked, and no
 * reference is dropped, while poison_lock is held, so it cannot deadlock with the device
 * core's locks.
 */
#define KFWTEST_MAX_POISONED 8
static DEFINE_MUTEX(poison_lock);
static struct device *poisoned[KFWTEST_MAX_POISONED];

static bool kfwtest_poisoned(struct device *dev)
{
	bool found = false;
	int i;

	mutex_lock(&poison_lock);
	for (i = 0; i < KFWTEST_MAX_POISONED; i++)
		if (poisoned[i] == dev)
			found = true;
	mutex_unlock(&poison_lock);
	return found;
}

static void kfwtest_poison(struct device *dev)
{
	int i, slot = -1;

	mutex_lock(&poison_lock);
	for (i = 0; i < KFWTEST_MAX_POISONED; i++) {
		if (poisoned[i] == dev) {
			mutex_unlock(&poison_lock);
			return;
		}
		if (!poisoned[i] && slot < 0)
			slot = i;
	}
	if (slot >= 0)
		poisoned[slot] = get_device(dev);
	mutex_unlock(&poison_lock);
	if (slot < 0)
		dev_warn(dev, "sticky: too many failed devices, this one is not remembered\n");
	else
		dev_info(dev, "sticky: the failed firmware load needs a reset before the next probe\n");
}

static int kfwtest_bus_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	struct device *dev = data;
	int i, found = 0;

	if (action != BUS_NOTIFY_DEL_DEVICE)
		return NOTIFY_DONE;
	mutex_lock(&poison_lock);
	for (i = 0; i < KFWTEST_MAX_POISONED; i++) {
		if (poisoned[i] == dev) {
			poisoned[i] = NULL;
			found++;
		}
	}
	mutex_unlock(&poison_lock);
	if (found)
		dev_info(dev, "sticky: device deleted, forgotten\n");
	/* Not the last references: device_del()'s caller holds one. */
	while (found--)
		put_device(dev);
	return NOTIFY_DONE;
}

static struct notifier_block kfwtest_pci_nb = { .notifier_call = kfwtest_bus_notify };
static struct notifier_block kfwtest_usb_nb = { .notifier_call = kfwtest_bus_notify };

static void kfwtest_forget_all(void)
{
	struct device *devs[KFWTEST_MAX_POISONED];
	int i;

	mutex_lock(&poison_lock);
	for (i = 0; i < KFWTEST_MAX_POISONED; i++) {
		devs[i] = poisoned[i];
		poisoned[i] = NULL;
	}
	mutex_unlock(&poison_lock);
	for (i = 0; i < KFWTEST_MAX_POISONED; i++)
		put_device(devs[i]); /* put_device(NULL) does nothing */
}

/*
 * kfwtest_sticky_refuses: with sticky, a device whose earlier probe failed is refused before any
 * firmware request, so the kernel log shows only "probe of <dev> failed with error -5" for it
 * (and kairos-firmware sees a probe failure with no firmware failure: not "the same file failed
 * again", so it escalates).
 */
static bool kfwtest_sticky_refuses(struct device *dev)
{
	if (!opt_sticky || !kfwtest_poisoned(dev))
		return false;
	dev_err(dev, "sticky: still in the state of the failed firmware load, needs a reset\n");
	return true;
}

/*
 * kfwtest_probe is both drivers' probe: 0 with the firmware loaded (fw_loaded=1), or bound
 * without it when allow_degraded (fw_loaded=0), or request_firmware's error, after which, with
 * sticky, the device is poisoned.
 */
static int kfwtest_probe(struct device *dev, const char *name, bool allow_degraded)
{
	const struct firmware *fw;
	struct kfwtest_state *s;
	int ret;

	s = devm_kzalloc(dev, sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	ret = request_firmware(&fw, name, dev);
	if (ret) {
		if (allow_degraded) {
			dev_warn(dev, "degraded: running without firmware %s\n", name);
			dev_set_drvdata(dev, s);
			return 0;
		}
		if (opt_sticky)
			kfwtest_poison(dev);
		return ret;
	}
	dev_info(dev, "firmware loaded: %s (%zu bytes)\n", name, fw->size);
	release_firmware(fw);
	s->fw_loaded = true;
	dev_set_drvdata(dev, s);
	return 0;
}

/* PCI: the probe fails with request_firmware's error (-ENOENT), so the core logs
 * "kfwtest_edu: probe of 0000:00:0N.0 failed with error -2". */
static int kfwtest_edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	if (kfwtest_sticky_refuses(&pdev->dev))
		return -EIO;
	return kfwtest_probe(&pdev->dev, EDU_FIRMWARE, opt_degraded);
}

static void kfwtest_edu_remove(struct pci_dev *pdev)
{
}

static const struct pci_device_id kfwtest_edu_ids[] = {
	{ PCI_DEVICE(0x1234, 0x11e8) },
	{ }
};
MODULE_DEVICE_TABLE(pci, kfwtest_edu_ids);

static struct pci_driver kfwtest_edu_driver = {
	.name = "kfwtest_edu",
	.id_table = kfwtest_edu_ids,
	.probe = kfwtest_edu_probe,
	.remove = kfwtest_edu_remove,
	.dev_groups = kfwtest_groups,
};

/* USB: like rtw88 in the spike's log, report the failure and return -EINVAL (-22). */
static int kfwtest_rtw_probe(struct usb_interface *intf, const struct usb_device_id *id)
{
	if (kfwtest_sticky_refuses(&intf->dev))
		return -EIO;
	if (kfwtest_probe(&intf->dev, RTW_FIRMWARE, false)) {
		dev_err(&intf->dev, "failed to request firmware\n");
		return -EINVAL;
	}
	return 0;
}

static void kfwtest_rtw_disconnect(struct usb_interface *intf)
{
}

/* USB_DEVICE sets only USB_DEVICE_ID_MATCH_VENDOR|_PRODUCT, so usb_match_one_id() never looks
 * at the interface: it matches every interface of the device, here the SourceSink gadget
 * function's vendor-specific (0xff) one (modalias usb:v2357p011Ed0200dc00dsc00dp00icFFisc00...). */
static const struct usb_device_id kfwtest_rtw_ids[] = {
	{ USB_DEVICE(0x2357, 0x011e) },
	{ }
};
MODULE_DEVICE_TABLE(usb, kfwtest_rtw_ids);

static struct usb_driver kfwtest_rtw_driver = {
	.name = "kfwtest_rtw",
	.id_table = kfwtest_rtw_ids,
	.probe = kfwtest_rtw_probe,
	.disconnect = kfwtest_rtw_disconnect,
	.dev_groups = kfwtest_groups,
};

static int __init kfwtest_init(void)
{
	int ret;

	/*
	 * usb_bus_type is not exported; usb_register() sets the driver's bus to it
	 * (drivers/usb/core/driver.c usb_register_driver; the field is driver.bus in Debian's
	 * 6.1.0-56 headers, which have no drvwrap wrapper), so the USB notifier can only be
	 * registered after it, when usb_register() has already probed the existing interfaces
	 * and, with sticky, poisoned the dongle's. That is safe: an interface deleted in between
	 * would only keep its entry, and the reference, until unload; it could not be freed and
	 * reused, so no new device could match it.
	 */
	ret = bus_register_notifier(&pci_bus_type, &kfwtest_pci_nb);
	if (ret)
		return ret;
	ret = pci_register_driver(&kfwtest_edu_driver);
	if (ret)
		goto err_pci_nb;
	ret = usb_register(&kfwtest_rtw_driver);
	if (ret)
		goto err_pci;
	ret = bus_register_notifier(kfwtest_rtw_driver.driver.bus, &kfwtest_usb_nb);
	if (ret)
		goto err_usb;
	return 0;

err_usb:
	usb_deregister(&kfwtest_rtw_driver);
err_pci:
	pci_unregister_driver(&kfwtest_edu_driver);
err_pci_nb:
	bus_unregister_notifier(&pci_bus_type, &kfwtest_pci_nb);
	kfwtest_forget_all();
	return ret;
}

static void __exit kfwtest_exit(void)
{
	bus_unregister_notifier(kfwtest_rtw_driver.driver.bus, &kfwtest_usb_nb);
	usb_deregister(&kfwtest_rtw_driver);
	pci_unregister_driver(&kfwtest_edu_driver);
	bus_unregister_notifier(&pci_bus_type, &kfwtest_pci_nb);
	kfwtest_forget_all();
}

module_init(kfwtest_init);
module_exit(kfwtest_exit);

MODULE_FIRMWARE(EDU_FIRMWARE);
MODULE_FIRMWARE(RTW_FIRMWARE);
MODULE_DESCRIPTION("kairos-firmware test drivers that need firmware to probe");
MODULE_LICENSE("GPL");
