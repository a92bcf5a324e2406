package hwmatch

import (
	"errors"
	"fmt"
	"strings"
	"sync"

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

	// Kernel is the module metadata used, nil when the modules directory was missing.
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
		wg               sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		kernel, kernelErr = kmod.Open(opts.Root.FS, inv.KernelRelease)
	}()
	go func() {
		defer wg.Done()
		kmsgPath, kmsgFS := opts.KmsgPath, vfs.FS(vfs.OSFS)
		if kmsgPath == "" {
			kmsgPath, kmsgFS = "/dev/kmsg", opts.Root.FS
		}
		log, logErr = kmsg.ReadFile(kmsgFS, kmsgPath)
	}()
	pciDevs, pciWarn = pciDevices(opts.Root)
	usbDevs, usbWarn = usbDevices(opts.Root)
	wg.Wait()

	if kernelErr != nil {
		inv.warn("kernel modules: %v; modules and firmware are not reported", kernelErr)
	} else {
		inv.Kernel = kernel
	}
	if logErr != nil {
		inv.warn("kernel log: %v; firmware failures are not reported", logErr)
	} else {
		inv.Log = log
	}
	inv.Warnings = append(append(inv.Warnings, pciWarn...), usbWarn...)
	inv.Devices = append(pciDevs, usbDevs...)

	var resolved map[string][]string
	if inv.Kernel != nil {
		modaliases := make([]string, 0, len(inv.Devices))
		for _, d := range inv.Devices {
			modaliases = append(modaliases, d.Modalias)
		}
		resolved = inv.Kernel.Resolve(modaliases)
	}
	for _, d := range inv.Devices {
		inv.resolve(d, resolved[d.Modalias])
	}
	if inv.Kernel != nil {
		inv.Warnings = append(inv.Warnings, inv.Kernel.Warnings...)
	}
	return inv, nil
}

// resolve fills a device's modules, firmware, kernel-log findings and status.
func (inv *Inventory) resolve(d *Device, modules []string) {
	d.Modules, d.Firmware, d.FirmwareFailed = []string{}, []string{}, []string{}
	if inv.Kernel != nil && d.Modalias != "" {
		d.Modules = append(d.Modules, modules...)
		seen := make(map[string]bool)
		for _, m := range d.Modules {
			fw, err := inv.Kernel.Firmware(m)
			if err != nil {
				d.Warnings = append(d.Warnings, err.Error())
				continue
			}
			for _, name := range fw {
				if !seen[name] {
					seen[name] = true
					d.Firmware = append(d.Firmware, name)
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
