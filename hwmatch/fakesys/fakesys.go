// Package fakesys builds fake system trees (sysfs, module metadata, a kernel log) for tests, as
// go-vfs vfst trees: maps from absolute paths to contents, *vfst.Symlink or *vfst.Dir.
package fakesys

import (
	"strings"

	"github.com/twpayne/go-vfs/v4/vfst"
)

// Release is the kernel release whose modules directory the fake trees have.
const Release = "6.9.0-test"

// PCIDevice adds the sysfs files of one PCI device below the root port pci0000:00.
func PCIDevice(tree map[string]any, addr, vendor, device, class, modalias, driver string) {
	dir := "/sys/devices/pci0000:00/" + addr
	tree["/sys/bus/pci/devices/"+addr] = &vfst.Symlink{Target: "../../../devices/pci0000:00/" + addr}
	tree[dir+"/vendor"] = vendor + "\n"
	tree[dir+"/device"] = device + "\n"
	tree[dir+"/class"] = class + "\n"
	if modalias != "" {
		tree[dir+"/modalias"] = modalias + "\n"
	}
	if driver != "" {
		tree[dir+"/driver"] = &vfst.Symlink{Target: "../../../bus/pci/drivers/" + driver}
	}
}

// PCIUevent adds the uevent file of a PCI device PCIDevice added, as pci_uevent writes it; ids
// and class as PCIDevice takes them ("0x10ec"). Real sysfs has one for every device; detect reads
// it first.
func PCIUevent(tree map[string]any, addr, vendor, device, class, modalias, driver string) {
	hex := func(s string) string { return strings.ToUpper(strings.TrimPrefix(s, "0x")) }
	ev := ""
	if driver != "" {
		ev += "DRIVER=" + driver + "\n"
	}
	ev += "PCI_CLASS=" + strings.TrimLeft(hex(class), "0") + "\nPCI_ID=" + hex(vendor) + ":" + hex(device) + "\n" +
		"PCI_SUBSYS_ID=" + hex(vendor) + ":0000\nPCI_SLOT_NAME=" + addr + "\nMODALIAS=" + modalias + "\n"
	tree["/sys/devices/pci0000:00/"+addr+"/uevent"] = ev
}

// SpikeMachine is a machine like the spike's: a Realtek USB WLAN adapter whose interface failed to
// load rtw88/rtw8821a_fw.bin, next to PCI devices in every state.
func SpikeMachine() map[string]any {
	tree := map[string]any{}
	PCIDevice(tree, "0000:00:00.0", "0x8086", "0x1237", "0x060000", "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00", "")
	PCIDevice(tree, "0000:00:02.0", "0x8086", "0x100e", "0x020000", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", "e1000")
	PCIDevice(tree, "0000:00:03.0", "0x1234", "0x11e8", "0x00ff00", "pci:v00001234d000011E8sv00001AF4sd00001100bc00scFFi00", "")
	// ghw rejects this modalias (too short): the device must still be listed, ids from sysfs.
	PCIDevice(tree, "0000:00:04.0", "0x10ec", "0xc821", "0x028000", "pci:v000010ECd0000C821", "")
	// A module matches, nothing is bound and the log is silent about it.
	PCIDevice(tree, "0000:00:06.0", "0x10ec", "0xc821", "0x028000", "pci:v000010ECd0000C821sv000010ECsd0000C821bc02sc80i00", "")

	usb := "/sys/devices/pci0000:00/0000:00:05.0/usb1"
	tree["/sys/bus/usb/devices/usb1"] = &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:05.0/usb1"}
	tree["/sys/bus/usb/devices/1-0:1.0"] = &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:05.0/usb1/1-0:1.0"}
	tree["/sys/bus/usb/devices/1-4"] = &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:05.0/usb1/1-4"}
	tree["/sys/bus/usb/devices/1-4:1.0"] = &vfst.Symlink{Target: "../../../devices/pci0000:00/0000:00:05.0/usb1/1-4/1-4:1.0"}
	for dir, attrs := range map[string]map[string]string{
		usb: {"idVendor": "1d6b", "idProduct": "0002", "bDeviceClass": "09", "bDeviceSubClass": "00", "bDeviceProtocol": "01"},
		// The root hub's interface: its device is usb1, not "1-0".
		usb + "/1-0:1.0": {"bInterfaceClass": "09", "bInterfaceSubClass": "00", "bInterfaceProtocol": "00",
			"modalias": "usb:v1D6Bp0002d0601dc09dsc00dp01ic09isc00ip00in00"},
		usb + "/1-4": {"idVendor": "2357", "idProduct": "11e", "bDeviceClass": "00", "bDeviceSubClass": "00", "bDeviceProtocol": "00"},
		// The adapter's interface has only its uevent file, which detect reads first (the
		// others fall back to the attribute files, as for a tree without uevent files).
		usb + "/1-4/1-4:1.0": {"uevent": "DEVTYPE=usb_interface\nPRODUCT=2357/11e/200\nTYPE=0/0/0\nINTERFACE=255/255/255\n" +
			"MODALIAS=usb:v2357p011Ed0200dc00dsc00dp00icFFiscFFipFFin00"},
	} {
		for name, value := range attrs {
			tree[dir+"/"+name] = value + "\n"
		}
	}
	tree[usb+"/driver"] = &vfst.Symlink{Target: "../../../../bus/usb/drivers/usb"}
	tree[usb+"/1-4/driver"] = &vfst.Symlink{Target: "../../../../../bus/usb/drivers/usb"}

	mods := "/lib/modules/" + Release
	tree[mods+"/modules.alias"] = strings.Join([]string{
		"# Aliases extracted from modules themselves.",
		"alias usb:v2357p011Ed*dc*dsc*dp*ic*isc*ip*in* rtw88_8821au",
		"alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000",
		"alias pci:v000010ECd0000C821sv*sd*bc*sc*i* rtw88_8821ce",
		"this line is malformed",
	}, "\n") + "\n"
	// Built-in modules declare their aliases and firmware in modules.builtin.modinfo; a module
	// found in modules.alias needs its .ko, which this tree lacks (a per-device warning).
	tree[mods+"/modules.builtin.modinfo"] = "edu_fw.alias=pci:v00001234d000011E8sv*sd*bc*sc*i*\x00edu_fw.firmware=edu/edu.bin\x00edu_fw.firmware=edu/edu-v2.bin\x00"
	tree[mods+"/modules.dep"] = ""
	tree["/dev/kmsg"] = strings.Join([]string{
		"[   48.874800] usb 1-4: new high-speed USB device number 3 using xhci_hcd",
		"[   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2",
		"[   49.065904] rtw_8821au 1-4:1.0: failed to request firmware",
		"[   49.078480] rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22",
		"[   50.000000] edu_fw 0000:00:03.0: firmware: failed to load edu/edu.bin (-2)",
	}, "\n") + "\n"
	return tree
}
