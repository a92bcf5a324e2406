// Package reprobe makes the kernel probe again the devices whose probe failed for lack of
// firmware, once that firmware is visible. It goes through the methods the plan chose for each
// device (drivers_probe or rebind first, then usb-reenumerate or pci-rescan), checks after each
// attempt in sysfs that the device bound and in the kernel log whether its firmware failed again,
// and never disturbs a device that holds mounted storage, carries the network root or drives the
// console unless reprobe.force names it. docs/reprobe.md describes the behaviour.
//
// Every write goes through sysops.Ops and every read through the root's FS, so a test plays the
// kernel with a fake sysfs tree and a sysops.Recorder whose clock only moves when slept.
package reprobe

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/stages/plan"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// Defaults of Options.
const (
	DefaultKmsgPath    = "/dev/kmsg"
	DefaultCmdlinePath = "/proc/cmdline"
	// PollInterval is how often an attempt looks at the device's driver link.
	PollInterval = 50 * time.Millisecond
	// logEvery is how many polls pass between two reads of the kernel log while waiting: a
	// logged probe failure ends the wait early, but reading all of /dev/kmsg every 50 ms is
	// needless work.
	logEvery = 20
)

// Options says where the inputs that are not sysfs come from.
type Options struct {
	// KmsgFS and KmsgPath are the kernel log read to verify attempts (kmsg.ReadFile): by
	// default the root's FS and /dev/kmsg. A text file works too; its line numbers are the
	// sequence numbers.
	KmsgFS   vfs.FS
	KmsgPath string
	// CmdlinePath is the kernel command line under the root, by default /proc/cmdline. It
	// names the network interface of a network root.
	CmdlinePath string
}

func (o Options) withDefaults(root *hostfs.Root) Options {
	if o.KmsgFS == nil {
		o.KmsgFS = root.FS
	}
	if o.KmsgPath == "" {
		o.KmsgPath = DefaultKmsgPath
	}
	if o.CmdlinePath == "" {
		o.CmdlinePath = DefaultCmdlinePath
	}
	return o
}

// Run re-probes the devices of list, in order, one at a time, and returns one Result per entry.
// devices is the inventory (hwmatch.Detect) the guards and the targets are looked up in.
func Run(root *hostfs.Root, ops sysops.Ops, devices []*hwmatch.Device, list []plan.Reprobe, cfg config.Reprobe, opts Options) []Result {
	results := []Result{}
	if len(list) == 0 {
		return results
	}
	opts = opts.withDefaults(root)
	if cfg.Attempts < 1 {
		cfg.Attempts = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = config.Duration(config.DefaultTimeout)
	}
	r := &runner{
		root:    root,
		ops:     ops,
		cfg:     cfg,
		guards:  FindGuards(root, devices, opts.CmdlinePath),
		log:     newLogWatch(opts.KmsgFS, opts.KmsgPath),
		devices: map[string]*hwmatch.Device{},
	}
	defer r.log.close()
	for _, d := range devices {
		r.devices[d.Bus+"/"+d.ID] = d
	}
	for _, item := range list {
		results = append(results, r.device(item))
	}
	return results
}

// runner holds what Run shares between devices.
type runner struct {
	root    *hostfs.Root
	ops     sysops.Ops
	cfg     config.Reprobe
	guards  *Guards
	log     *logWatch
	devices map[string]*hwmatch.Device
}

// target is the device being re-probed.
type target struct {
	id, bus string
	// sysfsPath is its /sys/devices directory (guards compare against it).
	sysfsPath string
	// failedBefore holds the firmware names that failed for it before this attempt: at boot
	// (inventory and kernel log) and in earlier attempts.
	failedBefore map[string]bool
}

// usbDevice is the USB device an interface belongs to ("1-4" for "1-4:1.0"), or the device
// itself. Interface names are <device>:<config>.<interface>
// (https://github.com/torvalds/linux/blob/v6.1/drivers/usb/core/message.c usb_set_configuration:
// dev_set_name "%d-%s:%d.%d").
func (t *target) usbDevice() string {
	dev, _, _ := strings.Cut(t.id, ":")
	return dev
}

func (r *runner) device(item plan.Reprobe) Result {
	start := r.ops.Now()
	res := Result{Device: item.Device, Bus: item.Bus, Tried: []string{}, FirmwareFailed: []string{}}
	finish := func(o Outcome, reason string) Result {
		res.Outcome, res.Reason = o, reason
		res.Duration = r.ops.Now().Sub(start)
		if res.Attempts > 0 && r.log.err != nil {
			res.Warnings = append(res.Warnings, r.log.err.Error()+": the attempts were verified by the driver link alone")
		}
		return res
	}
	if slices.Contains(r.cfg.Exclude, item.Device) {
		return finish(OutcomeSkipped, "excluded by reprobe.exclude")
	}
	t := &target{id: item.Device, bus: item.Bus, failedBefore: map[string]bool{}}
	if d := r.devices[item.Bus+"/"+item.Device]; d != nil {
		t.sysfsPath = d.SysfsPath
		for _, name := range d.FirmwareFailed {
			t.failedBefore[name] = true
		}
	}
	if t.sysfsPath == "" {
		p, err := r.root.Resolve(busDevice(t.bus, t.id))
		if err != nil {
			return finish(OutcomeStillUnbound, fmt.Sprintf("not present: %s: %v", r.root.Real(busDevice(t.bus, t.id)), err))
		}
		t.sysfsPath = p
	}
	for _, name := range r.log.failedSoFar(t.id) {
		t.failedBefore[name] = true
	}

	forced := slices.Contains(r.cfg.Force, t.id)
	if why := r.guards.Reason(t.id, t.sysfsPath); why != "" {
		if !forced {
			res.Guard = why
			return finish(OutcomeSkipped, fmt.Sprintf("guarded: %s; list %s in reprobe.force to re-probe it anyway", why, t.id))
		}
		res.Guard = "lifted by reprobe.force: " + why
	}

	methods, notes := r.methods(item, t, forced)
	if len(methods) == 0 {
		return finish(OutcomeSkipped, "no usable method: "+strings.Join(notes, "; "))
	}
	if drv, present := r.driverOf(t.bus, t.id); present && drv != "" && methods[0] == plan.MethodDriversProbe {
		// It bound by itself since the inventory was taken (a deferred probe, say).
		res.Driver = drv
		return finish(OutcomeBound, fmt.Sprintf("already bound to %s before any attempt", drv))
	}

	// earlier says why the attempts before the last one failed, for the reason of a bound device.
	var earlier []string
	for n := 0; n < r.cfg.Attempts; n++ {
		method := methods[min(n, len(methods)-1)]
		res.Attempts++
		res.Method = method
		res.Tried = append(res.Tried, method)
		a := r.attempt(method, t)
		for _, name := range a.firmwareFailed {
			if !slices.Contains(res.FirmwareFailed, name) {
				res.FirmwareFailed = append(res.FirmwareFailed, name)
			}
		}
		res.Driver = a.driver
		if a.driver != "" {
			reason := fmt.Sprintf("bound to %s by %s", a.driver, method)
			if len(a.firmwareFailed) > 0 {
				// Degraded (r8169 without rtl_nic), or a driver that tries several names and
				// loaded another one the log does not mention (mainline logs no successful load).
				reason += fmt.Sprintf("; %s failed to load: the driver runs without it or loaded another file", strings.Join(a.firmwareFailed, ", "))
			}
			if len(earlier) > 0 {
				reason += " (before: " + strings.Join(earlier, "; ") + ")"
			}
			return finish(OutcomeBound, reason)
		}
		earlier = append(earlier, method+": "+a.note)
		notes = append(notes, method+": "+a.note)
		// The same file failing twice means the kernel still cannot see it; a stronger
		// method reloads the driver the same way and would only repeat the failure.
		var again []string
		for _, name := range a.firmwareFailed {
			if t.failedBefore[name] {
				again = append(again, name)
			}
			t.failedBefore[name] = true
		}
		if len(again) > 0 {
			return finish(OutcomeStillUnbound, fmt.Sprintf("%s failed to load again: the firmware is still not visible to the kernel (%s)",
				strings.Join(again, ", "), strings.Join(notes, "; ")))
		}
	}
	if drv, _ := r.driverOf(t.bus, t.id); drv != "" {
		// The attempts stopped at failed writes (permission denied, say) and the device is
		// bound as it was, or something bound it after the last look of an attempt.
		res.Driver = drv
		return finish(OutcomeBound, fmt.Sprintf("bound to %s, but not by any attempt: %s", drv, strings.Join(notes, "; ")))
	}
	return finish(OutcomeStillUnbound, fmt.Sprintf("not bound after %d attempt(s): %s", res.Attempts, strings.Join(notes, "; ")))
}

// methods returns the plan's methods in escalation order, without those that do not apply to
// the device's bus or that would disturb a guarded device, and notes on what was left out.
func (r *runner) methods(item plan.Reprobe, t *target, forced bool) ([]string, []string) {
	var methods, notes []string
	for _, m := range append([]string{item.Method}, item.Fallbacks...) {
		if m == "" || slices.Contains(methods, m) {
			continue
		}
		switch m {
		case plan.MethodDriversProbe, plan.MethodRebind:
		case plan.MethodUSBReenumerate:
			if t.bus != "usb" {
				notes = append(notes, fmt.Sprintf("%s left out: %s is not a USB device", m, t.id))
				continue
			}
			// Re-enumerating the USB device removes all its interfaces, not only ours. An
			// interface's directory is always right below its device's (usb_set_configuration
			// makes the device its parent).
			dev := t.usbDevice()
			if dev != t.id && slices.Contains(r.cfg.Exclude, dev) {
				notes = append(notes, fmt.Sprintf("%s left out: it re-probes %s, which reprobe.exclude names", m, dev))
				continue
			}
			if dev != t.id && !forced && !slices.Contains(r.cfg.Force, dev) {
				if why := r.guards.Reason(dev, path.Dir(t.sysfsPath)); why != "" {
					notes = append(notes, fmt.Sprintf("%s left out: it removes every interface of %s, which %s", m, dev, why))
					continue
				}
			}
		case plan.MethodPCIRescan:
			if t.bus != "pci" {
				notes = append(notes, fmt.Sprintf("%s left out: %s is not a PCI device", m, t.id))
				continue
			}
		default:
			notes = append(notes, fmt.Sprintf("unknown method %q left out", m))
			continue
		}
		methods = append(methods, m)
	}
	return methods, notes
}

// busDevice is the /sys/bus/<bus>/devices/<id> link of a device.
func busDevice(bus, id string) string {
	return path.Join("/sys/bus", bus, "devices", id)
}
