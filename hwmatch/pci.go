package hwmatch

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/jaypipes/ghw"
	"github.com/jaypipes/ghw/pkg/pci"
	"github.com/jaypipes/pcidb"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

const sysBusPCIDevices = "/sys/bus/pci/devices"

// pciDevices lists the PCI devices under root. ghw reads and decodes them; the list of addresses
// comes from sysfs too because ghw's enumeration returns no devices at all (and a nil error) as
// soon as one device has a missing or malformed modalias (ghw v0.27.0 pkg/pci/pci_linux.go
// getDevices): devices ghw did not return are read here, so one odd device cannot hide the others.
// An empty pcidb keeps ghw from needing pci.ids, which an initramfs does not have.
func pciDevices(root *hostfs.Root) ([]*Device, []string) {
	entries, err := root.FS.ReadDir(sysBusPCIDevices)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v (no PCI devices listed)", root.Real(sysBusPCIDevices), cause(err))}
	}
	decoder, err := ghw.PCI(ghw.WithChroot(root.Dir), ghw.WithPCIDB(&pcidb.PCIDB{}),
		ghw.WithDisableTopology(), ghw.WithDisableTools(), ghw.WithDisableWarnings())
	if err != nil {
		return nil, []string{fmt.Sprintf("ghw PCI under %s: %v", root.Dir, err)}
	}
	var devices []*Device
	for _, e := range entries {
		address := e.Name()
		d := &Device{Bus: "pci", ID: address}
		if dev := decoder.GetDevice(address); dev != nil {
			d.Vendor, d.Product = dev.Vendor.ID, dev.Product.ID
			d.Class = dev.Class.ID + dev.Subclass.ID + dev.ProgrammingInterface.ID
			d.Modalias, d.Driver, d.Parent = dev.Modalias, dev.Driver, dev.ParentAddress
		} else {
			readPCIDevice(root, decoder, d)
		}
		d.SysfsPath = sysfsDevicePath(root, path.Join(sysBusPCIDevices, address))
		devices = append(devices, d)
	}
	sort.Slice(devices, func(i, j int) bool { return devices[i].ID < devices[j].ID })
	return devices, nil
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
