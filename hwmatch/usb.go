package hwmatch

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

const sysBusUSBDevices = "/sys/bus/usb/devices"

// usbDevices lists USB devices ("usb1", "1-4") and their interfaces ("1-4:1.0") from sysfs.
// ghw's USB support is not used: it gives devices no sysfs name and no modalias and leaves ids
// unpadded (ghw v0.27.0 pkg/usb), and interfaces, which is where USB drivers bind and where the
// modalias lives, are what matters here.
func usbDevices(root *hostfs.Root) ([]*Device, []string) {
	entries, err := root.FS.ReadDir(sysBusUSBDevices)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v (no USB devices listed)", root.Real(sysBusUSBDevices), cause(err))}
	}
	byID := make(map[string]*Device)
	var devices []*Device
	for _, e := range entries {
		d := usbEntry(root, e.Name())
		byID[d.ID] = d
		devices = append(devices, d)
	}
	// An interface carries its device's vendor and product: that is what users write in rules
	// ("usb: 2357:011e") and what the interface's modalias starts with.
	for _, d := range devices {
		if parent := byID[d.Parent]; parent != nil && d.Parent != "" {
			d.Vendor, d.Product = parent.Vendor, parent.Product
		}
	}
	sort.Slice(devices, func(i, j int) bool { return devices[i].ID < devices[j].ID })
	return devices, nil
}

func usbEntry(root *hostfs.Root, name string) *Device {
	dir := path.Join(sysBusUSBDevices, name)
	d := &Device{Bus: "usb", ID: name}
	d.SysfsPath = sysfsDevicePath(root, dir)
	d.Driver = linkBase(root, path.Join(dir, "driver"))
	if strings.IndexByte(name, ':') > 0 {
		// Interface "<device>:<config>.<interface>" (drivers/usb/core/message.c
		// usb_set_configuration). Its device is the sysfs parent directory: "1-4" for "1-4:1.0",
		// but "usb1" for a root hub's "1-0:1.0".
		d.Parent = path.Base(path.Dir(d.SysfsPath))
		d.Class = usbClass(root, dir, "bInterface", &d.Warnings)
		modalias, err := readTrimmed(root, path.Join(dir, "modalias"))
		if err != nil {
			d.Warnings = append(d.Warnings, err.Error())
		}
		d.Modalias = modalias
		return d
	}
	// A device has no modalias file: USB drivers match interfaces, and the device itself is
	// bound by the generic "usb" driver.
	d.Vendor = hexID(root, path.Join(dir, "idVendor"), 4, &d.Warnings)
	d.Product = hexID(root, path.Join(dir, "idProduct"), 4, &d.Warnings)
	d.Class = usbClass(root, dir, "bDevice", &d.Warnings)
	return d
}

// usbClass joins the class, subclass and protocol attributes (prefix "bDevice" or "bInterface")
// into 6 hex digits, or "" when one of them is unreadable.
func usbClass(root *hostfs.Root, dir, prefix string, warnings *[]string) string {
	var class string
	for _, attr := range []string{"Class", "SubClass", "Protocol"} {
		part := hexID(root, path.Join(dir, prefix+attr), 2, warnings)
		if part == "" {
			return ""
		}
		class += part
	}
	return class
}
