package hwmatch

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/ghw/pkg/pci"
	"github.com/jaypipes/pcidb"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

const sysBusPCIDevices = "/sys/bus/pci/devices"

// pciDevices lists the PCI devices under root. A device is read from its uevent file, which the
// kernel fills with everything needed here (pci_uevent in drivers/pci/pci-driver.c:
// DRIVER, PCI_CLASS, PCI_ID, MODALIAS): one read. A tree without uevent files (ghw's recorded
// machines, fixtures) is read and decoded by ghw, which stats and reads each attribute file
// through os.ReadFile, about twenty system calls a device: a third of detect's time on a
// 100-device machine (BenchmarkApplyHost). The list of addresses comes from sysfs because
// ghw's enumeration returns no devices at all (and a nil error) as soon as one device has a
// missing or malformed modalias (ghw v0.27.0 pkg/pci/pci_linux.go getDevices): devices ghw did
// not return are read here, so one odd device cannot hide the others. An empty pcidb keeps ghw
// from needing pci.ids, which an initramfs does not have.
func pciDevices(root *hostfs.Root) ([]*Device, []string) {
	entries, err := root.FS.ReadDir(sysBusPCIDevices)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v (no PCI devices listed)", root.Real(sysBusPCIDevices), cause(err))}
	}
	var decoder *pci.Info
	var devices []*Device
	for _, e := range entries {
		address := e.Name()
		d := &Device{Bus: "pci", ID: address}
		d.SysfsPath = sysfsDevicePath(root, path.Join(sysBusPCIDevices, address))
		if pciFromUevent(root, d) {
			devices = append(devices, d)
			continue
		}
		if decoder == nil {
			if decoder, err = ghw.PCI(ghw.WithChroot(root.Dir), ghw.WithPCIDB(&pcidb.PCIDB{}),
				ghw.WithDisableTopology(), ghw.WithDisableTools(), ghw.WithDisableWarnings()); err != nil {
				return nil, []string{fmt.Sprintf("ghw PCI under %s: %v", root.Dir, err)}
			}
		}
		if dev := decoder.GetDevice(address); dev != nil {
			d.Vendor, d.Product = dev.Vendor.ID, dev.Product.ID
			d.Class = dev.Class.ID + dev.Subclass.ID + dev.ProgrammingInterface.ID
			d.Modalias, d.Driver, d.Parent = dev.Modalias, dev.Driver, dev.ParentAddress
		} else {
			readPCIDevice(root, decoder, d)
		}
		devices = append(devices, d)
	}
	sort.Slice(devices, func(i, j int) bool { return devices[i].ID < devices[j].ID })
	return devices, nil
}

// pciFromUevent fills d from its uevent file: PCI_ID=VVVV:PPPP and PCI_CLASS (hex), MODALIAS,
// DRIVER when one is bound; the parent bridge from the sysfs path. It reports false, changing
// nothing but SysfsPath, when the file is missing or lacks a field.
func pciFromUevent(root *hostfs.Root, d *Device) bool {
	ev, ok := readUevent(root, path.Join(sysBusPCIDevices, d.ID))
	if !ok {
		return false
	}
	vendor, product, ok := strings.Cut(ev["PCI_ID"], ":")
	v, err1 := strconv.ParseUint(vendor, 16, 16)
	p, err2 := strconv.ParseUint(product, 16, 16)
	class, err3 := strconv.ParseUint(ev["PCI_CLASS"], 16, 24)
	if !ok || err1 != nil || err2 != nil || err3 != nil || ev["MODALIAS"] == "" {
		return false
	}
	d.Vendor, d.Product, d.Class = fmt.Sprintf("%04x", v), fmt.Sprintf("%04x", p), fmt.Sprintf("%06x", class)
	d.Modalias, d.Driver = ev["MODALIAS"], ev["DRIVER"]
	if parent := path.Base(path.Dir(d.SysfsPath)); strings.Count(parent, ":") == 2 {
		d.Parent = parent
	}
	return true
}

// readPCIDevice reads a device ghw skipped straight from its sysfs attributes.
func readPCIDevice(root *hostfs.Root, decoder *pci.Info, d *Device) {
	dir := path.Join(sysBusPCIDevices, d.ID)
	d.Driver = linkBase(root, path.Join(dir, "driver"))
	if parent := path.Base(path.Dir(sysfsDevicePath(root, dir))); strings.Count(parent, ":") == 2 {
		d.Parent = parent
	}
	modalias, err := readTrimmed(root, path.Join(dir, "modalias"))
	if err != nil {
		d.Warnings = append(d.Warnings, err.Error())
	}
	d.Modalias = modalias
	if dev := decoder.ParseDevice(d.ID, modalias); dev != nil {
		d.Vendor, d.Product = dev.Vendor.ID, dev.Product.ID
		d.Class = dev.Class.ID + dev.Subclass.ID + dev.ProgrammingInterface.ID
		return
	}
	// ghw could not decode the modalias: take the ids from their own attribute files.
	if modalias != "" {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s: malformed modalias %q", root.Real(path.Join(dir, "modalias")), modalias))
	}
	d.Vendor = hexID(root, path.Join(dir, "vendor"), 4, &d.Warnings)
	d.Product = hexID(root, path.Join(dir, "device"), 4, &d.Warnings)
	d.Class = hexID(root, path.Join(dir, "class"), 6, &d.Warnings)
}
