package reprobe

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"syscall"

	"github.com/kairos-io/kairos-firmware/hwmatch/kmsg"
	"github.com/kairos-io/kairos-firmware/stages/plan"
)

// attemptResult is what one attempt saw.
type attemptResult struct {
	// driver is the driver the attempt bound, "" when it bound none.
	driver string
	// firmwareFailed are the names that failed for the device during the attempt and were
	// not loaded afterwards in it.
	firmwareFailed []string
	// note says why the attempt did not bind the device.
	note string
}

// attempt applies one method to the device and verifies the outcome.
func (r *runner) attempt(method string, t *target) attemptResult {
	r.log.skip()
	start := r.ops.Now()
	err := r.apply(method, t)
	// bind_store hands the probe's error to the writer, and -EPROBE_DEFER as EAGAIN: that
	// probe is queued and may still bind
	// (https://github.com/torvalds/linux/blob/v6.1/drivers/base/dd.c device_driver_attach),
	// so it is waited for like any other. Any other failed write left the device as it was:
	// there is nothing to wait for.
	if errors.Is(err, syscall.EAGAIN) {
		err = nil
	}
	var events []kmsg.Event
	if err == nil {
		r.wait(t, start, &events)
	}
	events = append(events, r.log.since(t.id)...)
	// The link is looked at last, after the log: a link seen while waiting and gone now was an
	// asynchronous probe that failed (really_probe creates the link in driver_sysfs_add before
	// calling probe and removes it when probe fails, drivers/base/dd.c).
	driver, _ := r.driverOf(t.bus, t.id)
	a := attemptResult{firmwareFailed: failedNames(events)}
	if err == nil && driver != "" {
		a.driver = driver
		return a
	}
	// A write that failed leaves the device as it was: bound or not, this attempt did not
	// probe it.
	var note []string
	if err != nil {
		note = append(note, err.Error())
	}
	if ev, ok := lastProbeFailure(events); ok {
		note = append(note, fmt.Sprintf("probe with driver %s failed with error %d", ev.Driver, ev.Errno))
	} else if err == nil {
		note = append(note, fmt.Sprintf("no driver bound within %s", r.cfg.Timeout))
	}
	if len(a.firmwareFailed) > 0 {
		note = append(note, strings.Join(a.firmwareFailed, ", ")+" failed to load")
	}
	if _, present := r.driverOf(t.bus, t.id); !present {
		note = append(note, fmt.Sprintf("%s is gone from %s", t.id, path.Dir(busDevice(t.bus, t.id))))
	}
	a.note = strings.Join(note, ", ")
	return a
}

// apply makes the writes of one method. An error means the method stopped at that write.
func (r *runner) apply(method string, t *target) error {
	switch method {
	case plan.MethodDriversProbe:
		return r.driversProbe(t.bus, t.id)
	case plan.MethodRebind:
		return r.rebind(t)
	case plan.MethodUSBReenumerate:
		return r.usbReenumerate(t)
	case plan.MethodPCIRescan:
		return r.pciRescan(t)
	}
	return fmt.Errorf("unknown re-probe method %q", method)
}

// write writes value to the attribute at p (a path under the root). sysops.Linux names the
// path and value in its errors.
func (r *runner) write(p, value string) error {
	return r.ops.WriteAttr(r.root.Real(p), value)
}

// driversProbe writes the device name to /sys/bus/<bus>/drivers_probe. The kernel looks for a
// driver only when none is bound, and the write succeeds whether or not one binds: device_attach
// gives 0 when no driver matched and probe errors come back positive, which
// bus_rescan_devices_helper does not count as failures
// (https://github.com/torvalds/linux/blob/v6.1/drivers/base/bus.c drivers_probe_store,
// https://github.com/torvalds/linux/blob/v6.1/drivers/base/dd.c __device_attach_driver).
// Only the driver link says whether it bound.
func (r *runner) driversProbe(bus, id string) error {
	return r.write(path.Join("/sys/bus", bus, "drivers_probe"), id)
}

// rebind unbinds the device from its driver and lets the kernel choose again through
// drivers_probe, which probes the same driver unless another matches first. unbind_store fails
// with ENODEV unless the device is bound to exactly that driver
// (https://github.com/torvalds/linux/blob/v6.1/drivers/base/bus.c unbind_store), so the driver is
// read from the link right before. A device no longer bound only needs drivers_probe.
func (r *runner) rebind(t *target) error {
	drv, _ := r.driverOf(t.bus, t.id)
	if drv != "" {
		if err := r.write(path.Join("/sys/bus", t.bus, "drivers", drv, "unbind"), t.id); err != nil {
			return err
		}
	}
	return r.driversProbe(t.bus, t.id)
}

// usbReenumerate unbinds and binds the USB device an interface belongs to, as the spike's
// manual fix did through /sys/bus/usb/drivers/usb/{unbind,bind}. The device is normally bound to
// the generic driver "usb" (https://github.com/torvalds/linux/blob/v6.1/drivers/usb/core/generic.c
// usb_generic_driver); its disconnect deconfigures the device, which deletes every interface, and
// its probe chooses and sets a configuration again, which creates the interfaces anew and probes
// each (drivers/usb/core/message.c usb_set_configuration). A few device drivers replace the
// generic one, so the driver is read from the device's link. An unbound USB device has no
// configuration and no interfaces; drivers_probe binds it.
func (r *runner) usbReenumerate(t *target) error {
	dev := t.usbDevice()
	drv, present := r.driverOf("usb", dev)
	switch {
	case !present:
		return fmt.Errorf("USB device %s of %s: %s does not exist", dev, t.id, r.root.Real(busDevice("usb", dev)))
	case drv == "":
		return r.driversProbe("usb", dev)
	}
	dir := path.Join("/sys/bus/usb/drivers", drv)
	if err := r.write(path.Join(dir, "unbind"), dev); err != nil {
		return err
	}
	return r.write(path.Join(dir, "bind"), dev)
}

// pciRescan removes the PCI device and rescans every bus. remove_store stops the driver and
// deletes the device and everything below it; rescan_store walks all buses and adds the devices
// found, which get the same domain:bus:device.function name and are probed like at boot
// (https://github.com/torvalds/linux/blob/v6.1/drivers/pci/pci-sysfs.c remove_store,
// rescan_store; drivers/pci/bus.c pci_bus_add_device). A device already removed (by an earlier
// attempt whose rescan did not bring it back) only needs the rescan.
func (r *runner) pciRescan(t *target) error {
	if _, present := r.driverOf("pci", t.id); present {
		if err := r.write(path.Join(busDevice("pci", t.id), "remove"), "1"); err != nil {
			return err
		}
	}
	return r.write("/sys/bus/pci/rescan", "1")
}
