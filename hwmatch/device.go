// Package hwmatch answers what hardware is in a machine and what firmware it needs: it inventories
// PCI and USB devices from sysfs, matches their modaliases against the kernel's module aliases,
// collects the firmware those modules declare, and reads the kernel log's firmware failures.
package hwmatch

// Status says where a device stands with its driver.
type Status string

const (
	// StatusBound: a driver is bound to the device (it may still run degraded; see FirmwareFailed).
	StatusBound Status = "bound"
	// StatusFailedFirmware: no driver is bound and the kernel log shows a firmware load failure
	// for the device: the case a re-probe can fix once the firmware is visible.
	StatusFailedFirmware Status = "failed-firmware"
	// StatusUnbound: a module matches the device but nothing is bound.
	StatusUnbound Status = "unbound"
	// StatusNoDriver: no module of this kernel matches the device.
	StatusNoDriver Status = "no-driver"
)

// Device is one PCI device, USB device or USB interface.
type Device struct {
	Bus string `json:"bus"` // "pci" or "usb"
	// ID is the sysfs name: 0000:00:04.0, 1-4, 1-4:1.0.
	ID string `json:"id"`
	// Vendor and Product are 4 lowercase hex digits. A USB interface carries its device's.
	Vendor  string `json:"vendor"`
	Product string `json:"product"`
	// Class is 6 lowercase hex digits: PCI class/subclass/prog-if; USB class/subclass/protocol
	// (of the interface for an interface, of the device for a device).
	Class    string `json:"class"`
	Modalias string `json:"modalias"`
	Driver   string `json:"driver"`
	// Parent is the PCI bridge or the USB device an interface belongs to, when there is one.
	Parent string `json:"parent,omitempty"`
	// SysfsPath is the device's directory under /sys/devices, as seen under the root.
	SysfsPath string `json:"sysfs_path"`

	// Modules are the modules whose alias matches the device, as `modprobe -R` lists them,
	// and Firmware the names they declare (MODULE_FIRMWARE).
	Modules  []string `json:"modules"`
	Firmware []string `json:"firmware"`
	// Drivers are the modules among Modules expected to drive the device (the bound driver's;
	// else those naming its product id; else all), and Needs the firmware they declare: what
	// the plan selects automatically (docs/detect.md, "Drivers").
	Drivers        []string `json:"drivers"`
	Needs          []string `json:"needs"`
	FirmwareFailed []string `json:"firmware_failed"`
	ProbeFailed    bool     `json:"probe_failed"`
	ProbeError     int      `json:"probe_error,omitempty"`
	Status         Status   `json:"status"`
	// Warnings are problems reading this device; the rest of the inventory is unaffected.
	Warnings []string `json:"warnings,omitempty"`

	// driverModule is the module the bound driver belongs to, from sysfs.
	driverModule string
}
