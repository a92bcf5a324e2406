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
 */
#include <linux/firmware.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/usb.h>

#define EDU_FIRMWARE "kfwtest/edu.bin"
#define RTW_FIRMWARE "rtw88/rtw8821a_fw.bin"

static int kfwtest_load(struct device *dev, const char *name)
{
	const struct firmware *fw;
	int ret;

	ret = request_firmware(&fw, name, dev);
	if (ret)
		return ret;
	dev_info(dev, "firmware loaded: %s (%zu bytes)\n", name, fw->size);
	release_firmware(fw);
	return 0;
}

/* PCI: the probe fails with request_firmware's error (-ENOENT), so the core logs
 * "kfwtest_edu: probe of 0000:00:0N.0 failed with error -2". */
static int kfwtest_edu_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	return kfwtest_load(&pdev->dev, EDU_FIRMWARE);
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
};

/* USB: like rtw88 in the spike's log, report the failure and return -EINVAL (-22). */
static int kfwtest_rtw_probe(struct usb_interface *intf, const struct usb_device_id *id)
{
	if (kfwtest_load(&intf->dev, RTW_FIRMWARE)) {
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
};

static int __init kfwtest_init(void)
{
	int ret;

	ret = pci_register_driver(&kfwtest_edu_driver);
	if (ret)
		return ret;
	ret = usb_register(&kfwtest_rtw_driver);
	if (ret)
		pci_unregister_driver(&kfwtest_edu_driver);
	return ret;
}

static void __exit kfwtest_exit(void)
{
	usb_deregister(&kfwtest_rtw_driver);
	pci_unregister_driver(&kfwtest_edu_driver);
}

module_init(kfwtest_init);
module_exit(kfwtest_exit);

MODULE_FIRMWARE(EDU_FIRMWARE);
MODULE_FIRMWARE(RTW_FIRMWARE);
MODULE_DESCRIPTION("kairos-firmware test drivers that need firmware to probe");
MODULE_LICENSE("GPL");
