package hwmatch

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	vfs "github.com/twpayne/go-vfs/v4"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch/kmod"
	"github.com/kairos-io/kairos-firmware/hwmatch/kmsg"
)

// Options says which system to inventory.
type Options struct {
	Root *hostfs.Root
	// KernelRelease picks the modules directory; "" means the root's
	// /proc/sys/kernel/osrelease, else the running kernel's.
	KernelRelease string
	// KmsgPath is a kernel log on the real filesystem: the /dev/kmsg character device or a text
	// file of log lines. "" means /dev/kmsg under the root.
	KmsgPath string
}

// Inventory is what Detect found.
type Inventory struct {
	KernelRelease string    `json:"kernel_release"`
	Devices       []*Device `json:"devices"`
	// Warnings are inputs that were missing or unreadable; everything else was still inventoried.
	Warnings []string `json:"warnings,omitempty"`

	// Kernel is the module metadata used, nil when the modules directory was missing. Detect
	// has closed it (kmod.Kernel.Close): its fields remain, lookups are not allowed.
	Kernel *kmod.Kernel `json:"-"`
	// Log is the kernel log used, nil when it could not be read.
	Log *kmsg.Log `json:"-"`
}

// Detect inventories the PCI and USB devices under opts.Root and what each needs. Nothing here
// fails as a whole: a missing modules directory, kernel log or bus degrades to a warning.
func Detect(opts Options) (*Inventory, error) {
	if opts.Root == nil {
		return nil, errors.New("hwmatch: no root given")
	}
	inv := &Inventory{}
	inv.KernelRelease = kernelRelease(opts.Root, opts.KernelRelease)

	// The kernel's module metadata, the kernel log and the devices are independent reads,
	// mostly waiting on syscalls: side by side they take the time of the longest (the
	// modules' metadata) instead of the sum (BenchmarkDetectLargestMachine). Each writes
	// only its own variables; the warnings keep the order of a sequential run.
	var (
		kernel           *kmod.Kernel
		kernelErr        error
		log              *kmsg.Log
		logErr           error
		pciDevs, usbDevs []*Device
		pciWarn, usbWarn []string
		kernelRead       = make(chan struct{})
		logRead          = make(chan struct{})
	)
	go func() {
		defer close(kernelRead)
		kernel, kernelErr = kmod.Open(opts.Root.FS, inv.KernelRelease)
	}()
	go func() {
		defer close(logRead)
		kmsgPath, kmsgFS := opts.KmsgPath, vfs.FS(vfs.OSFS)
		if kmsgPath == "" {
			kmsgPath, kmsgFS = "/dev/kmsg", opts.Root.FS
		}
		log, logErr = kmsg.ReadFile(kmsgFS, kmsgPath)
	}()
	pciDevs, pciWarn = pciDevices(opts.Root)
	usbDevs, usbWarn = usbDevices(opts.Root)
	inv.Devices = append(pciDevs, usbDevs...)

	// The modules' lookups need the devices and the kernel's metadata, not the log: they run
	// while the log may still be read.
	<-kernelRead
	if kernelErr != nil {
		inv.warn("kernel modules: %v; modules and firmware are not reported", kernelErr)
	} else {
		inv.Kernel = kernel
	}
	var resolved, specific map[string][]string
	if inv.Kernel != nil {
		modaliases := make([]string, 0, len(inv.Devices))
		for _, d := range inv.Devices {
			modaliases = append(modaliases, d.Modalias)
		}
		resolved, specific = inv.Kernel.ResolveSpecific(modaliases)
		var modules []string
		for _, mods := range resolved {
			modules = append(modules, mods...)
		}
		inv.Kernel.Prefetch(modules)
	}
	// The bound driver's module (drivers/base/module.c module_add_driver makes the link, for
	// built-in drivers too), read once per driver: every device's driver/module link is its
	// driver's. Recorded machines may lack it: then the driver's own name stands for its module.
	driverModules := map[string]string{}
	for _, d := range inv.Devices {
		if d.Driver == "" {
			continue
		}
		key := d.Bus + "/" + d.Driver
		module, known := driverModules[key]
		if !known {
			module = linkBase(opts.Root, path.Join("/sys/bus", d.Bus, "devices", d.ID, "driver", "module"))
			driverModules[key] = module
		}
		d.driverModule = module
	}

	<-logRead
	if logErr != nil {
		inv.warn("kernel log: %v; firmware failures are not reported", logErr)
	} else {
		inv.Log = log
	}
	inv.Warnings = append(append(inv.Warnings, pciWarn...), usbWarn...)
	for _, d := range inv.Devices {
		inv.resolve(d, resolved[d.Modalias], specific[d.Modalias])
	}
	if inv.Kernel != nil {
		// Every lookup is done: release the kernel's memory-mapped indexes.
		if err := inv.Kernel.Close(); err != nil {
			inv.warn("kernel modules: %v", err)
		}
		inv.Warnings = append(inv.Warnings, inv.Kernel.Warnings...)
	}
	return inv, nil
}

// resolve fills a device's modules, firmware, drivers, kernel-log findings and status.
// specific are the modules whose alias names the device's product (kmod.NamesProduct).
func (inv *Inventory) resolve(d *Device, modules, specific []string) {
	d.Modules, d.Firmware, d.FirmwareFailed = []string{}, []string{}, []string{}
	d.Drivers, d.Needs = []string{}, []string{}
	if inv.Kernel != nil && d.Modalias != "" {
		d.Modules = append(d.Modules, modules...)
		d.Drivers = drivers(d, specific)
		declared := make(map[string][]string)
		seen := make(map[string]bool)
		for _, m := range d.Modules {
			fw, err := inv.Kernel.Firmware(m)
			if err != nil {
				d.Warnings = append(d.Warnings, err.Error())
				continue
			}
			declared[m] = fw
			for _, name := range fw {
				if !seen[name] {
					seen[name] = true
					d.Firmware = append(d.Firmware, name)
				}
			}
		}
		needed := make(map[string]bool)
		for _, m := range d.Drivers {
			for _, name := range declared[m] {
				if !needed[name] {
					needed[name] = true
					d.Needs = append(d.Needs, name)
				}
			}
		}
	}
	if inv.Log != nil {
		s := inv.Log.Device(d.ID)
		d.FirmwareFailed = append(d.FirmwareFailed, s.FirmwareFailed...)
		d.ProbeFailed, d.ProbeError = s.ProbeFailed, s.ProbeErrno
	}
	d.Status = status(d)
}

// drivers picks, among a device's modules, those expected to drive it, whose firmware it needs:
//   - a bound device: the module of its driver, and none when that driver is not one of the
//     modules (an out-of-tree driver such as nvidia's: nouveau's firmware is of no use then);
//   - otherwise the modules whose alias names the device's product when there are some: a
//     catch-all entry (amdgpu's PCI_ANY_ID one, which matches every AMD display controller
//     and gives up on those it does not know) is not the driver of a device another module
//     lists by its id (radeon for a Radeon HD 6670, ghw's recorded machine 61797caf);
//   - otherwise every module that matches.
func drivers(d *Device, specific []string) []string {
	if d.Driver != "" {
		for _, name := range []string{d.driverModule, d.Driver} {
			if name = strings.ReplaceAll(name, "-", "_"); slices.Contains(d.Modules, name) {
				return []string{name}
			}
		}
		return []string{}
	}
	if len(specific) > 0 {
		return append([]string{}, specific...)
	}
	return append([]string{}, d.Modules...)
}

func status(d *Device) Status {
	switch {
	case d.Driver != "":
		return StatusBound
	case len(d.FirmwareFailed) > 0:
		return StatusFailedFirmware
	case len(d.Modules) > 0:
		return StatusUnbound
	default:
		return StatusNoDriver
	}
}

func (inv *Inventory) warn(format string, args ...any) {
	inv.Warnings = append(inv.Warnings, fmt.Sprintf(format, args...))
}

// kernelRelease picks the release whose modules describe the root: the explicit one, else the
// root's /proc/sys/kernel/osrelease (the running kernel of a live root, or what a recorded
// machine wrote), else the kernel this process runs on.
func kernelRelease(root *hostfs.Root, explicit string) string {
	if explicit != "" {
		return explicit
	}
	if data, err := root.FS.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		if r := strings.TrimSpace(string(data)); r != "" {
			return r
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
