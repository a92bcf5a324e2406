package hwmatch

import (
	"fmt"
	"path"
	"sort"
	"strconv"
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
	isInterface := strings.IndexByte(name, ':') > 0
	if isInterface {
		d.Parent = path.Base(path.Dir(d.SysfsPath))
	}
	if usbFromUevent(root, dir, d, isInterface) {
		return d
	}
	d.Driver = linkBase(root, path.Join(dir, "driver"))
	if isInterface {
		d.Class = usbClass(root, dir, "bInterface", &d.Warnings)
		modalias, err := readTrimmed(root, path.Join(dir, "modalias"))
		if err != nil {
			d.Warnings = append(d.Warnings, err.Error())
		}
		d.Modalias = modalias
		return d
	}
	d.Vendor = hexID(root, path.Join(dir, "idVendor"), 4, &d.Warnings)
	d.Product = hexID(root, path.Join(dir, "idProduct"), 4, &d.Warnings)
	d.Class = usbClass(root, dir, "bDevice", &d.Warnings)
	return d
}

// usbFromUevent fills d from the uevent file, which holds in one read what the attribute files
// hold in five or six (and the bound driver): PRODUCT=<vendor>/<product>/<bcdDevice> in hex,
// TYPE=<class>/<subclass>/<protocol> in decimal for a device, INTERFACE=... for an interface,
// with MODALIAS and DRIVER (usb_uevent and usb_if_uevent in drivers/usb/core/driver.c and
// message.c, https://github.com/torvalds/linux/blob/v6.1/drivers/usb/core/message.c). It
// reports false, changing nothing, when there is no uevent file or it lacks a field (fixture
// trees): the attribute files are read then.
func usbFromUevent(root *hostfs.Root, dir string, d *Device, isInterface bool) bool {
	ev, ok := readUevent(root, dir)
	if !ok {
		return false
	}
	typeKey := "TYPE"
	if isInterface {
		typeKey = "INTERFACE"
		if _, ok := ev["MODALIAS"]; !ok {
			return false
		}
	}
	ids, okIDs := splitNumbers(ev["PRODUCT"], 16, 2)
	class, okClass := splitNumbers(ev[typeKey], 10, 3)
	if !okIDs || !okClass || ids[0] > 0xffff || ids[1] > 0xffff || class[0] > 0xff || class[1] > 0xff || class[2] > 0xff {
		return false
	}
	d.Vendor, d.Product = fmt.Sprintf("%04x", ids[0]), fmt.Sprintf("%04x", ids[1])
	d.Class = fmt.Sprintf("%02x%02x%02x", class[0], class[1], class[2])
	d.Modalias, d.Driver = ev["MODALIAS"], ev["DRIVER"]
	return true
}

// splitNumbers parses the first n of the "/"-separated numbers of s in base.
func splitNumbers(s string, base, n int) ([]uint64, bool) {
	parts := strings.Split(s, "/")
	if len(parts) < n {
		return nil, false
	}
	out := make([]uint64, n)
	for i := range out {
		v, err := strconv.ParseUint(parts[i], base, 32)
		if err != nil {
			return nil, false
		}
		out[i] = v
	}
	return out, true
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
