package reprobe

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// This file is the test's kernel: a sysfs tree (a vfst tree in a temporary directory) and the
// effect of each sysfs write on it, as the driver core has it in drivers/base/bus.c, dd.c,
// drivers/usb/core/generic.c and drivers/pci/pci-sysfs.c. Probes are synchronous unless a
// device's probe says otherwise; the clock is the Recorder's, which moves only on Sleep.

// probeResult is what one probe of a fake device does.
type probeResult struct {
	bind bool
	// after delays the bind (an asynchronous probe); 0 binds before the write returns.
	after time.Duration
	// firmwareFailed is logged as a "Direct firmware load ... failed" line; without bind the
	// probe then fails with -2 and says so in the log.
	firmwareFailed string
}

// fakeDev is one device of the fake machine.
type fakeDev struct {
	bus, id, dir string
	class        string
	// driver is the driver that matches the device; bound says whether it is bound now.
	driver string
	bound  bool
	// probe decides each probe; trigger names the write that caused it: "drivers_probe",
	// "bind", "usb-bind" (its USB device was bound) or "rescan".
	probe func(trigger string) probeResult
	// interfaces of a USB device, deleted and created again with its configuration.
	interfaces []*fakeDev
	parent     string
	// firmwareFailed is what the inventory says failed at boot.
	firmwareFailed []string
	removed        bool
}

// rig builds a fake machine; start turns it into a running fake kernel.
type rig struct {
	t       *testing.T
	tree    map[string]any
	devs    map[string]*fakeDev
	order   []*fakeDev
	bootLog []string
}

func newRig(t *testing.T) *rig {
	return &rig{t: t, devs: map[string]*fakeDev{}, tree: map[string]any{
		"/proc/cmdline":        "BOOT_IMAGE=/boot/vmlinuz console=tty1 root=LABEL=COS_ACTIVE rd.neednet=0\n",
		"/proc/self/mountinfo": "22 1 0:1 / / rw - rootfs rootfs rw\n",
	}}
}

// relLink is a relative symlink from link to target, as sysfs writes them.
func relLink(link, target string) *vfst.Symlink {
	rel, err := filepath.Rel(path.Dir(link), target)
	if err != nil {
		panic(err)
	}
	return &vfst.Symlink{Target: rel}
}

// device adds a device directory, its /sys/bus link, its driver's directory and, when bound,
// its driver link.
func (r *rig) device(bus, id, dir, class, driver string, bound bool) *fakeDev {
	d := &fakeDev{bus: bus, id: id, dir: dir, class: class, driver: driver, bound: bound,
		probe: func(string) probeResult { return probeResult{bind: true} }}
	r.devs[id] = d
	r.order = append(r.order, d)
	r.tree[dir+"/uevent"] = ""
	r.tree[busDevice(bus, id)] = relLink(busDevice(bus, id), dir)
	if driver != "" {
		r.tree[path.Join("/sys/bus", bus, "drivers", driver, "uevent")] = ""
	}
	if bound {
		r.tree[dir+"/driver"] = relLink(dir+"/driver", path.Join("/sys/bus", bus, "drivers", driver))
	}
	return d
}

// pci adds a PCI device below parentDir ("/sys/devices/pci0000:00" for the root bus).
func (r *rig) pci(parentDir, addr, class, driver string, bound bool) *fakeDev {
	d := r.device("pci", addr, path.Join(parentDir, addr), class, driver, bound)
	r.tree[d.dir+"/class"] = "0x" + class + "\n"
	return d
}

// usb adds a USB device bound to the generic driver below a host controller's root hub, with
// unbound-or-bound interfaces named <id>:1.<n>.
func (r *rig) usb(hubDir, id string, ifaces ...*fakeDev) *fakeDev {
	d := r.device("usb", id, path.Join(hubDir, id), "000000", "usb", true)
	for _, i := range ifaces {
		i.parent = id
		d.interfaces = append(d.interfaces, i)
	}
	return d
}

// usbIface adds a USB interface of the device at devDir.
func (r *rig) usbIface(devDir, id, driver string, bound bool) *fakeDev {
	return r.device("usb", id, path.Join(devDir, id), "ffffff", driver, bound)
}

// log adds kernel log lines from before the run.
func (r *rig) log(lines ...string) {
	r.bootLog = append(r.bootLog, lines...)
}

// inventory is what hwmatch.Detect would say about the devices.
func (r *rig) inventory() []*hwmatch.Device {
	var out []*hwmatch.Device
	for _, d := range r.order {
		dev := &hwmatch.Device{Bus: d.bus, ID: d.id, Class: d.class, Parent: d.parent, SysfsPath: d.dir,
			FirmwareFailed: slices.Clone(d.firmwareFailed)}
		if d.bound {
			dev.Driver = d.driver
		}
		out = append(out, dev)
	}
	return out
}

// kernel is the running fake kernel.
type kernel struct {
	t    *testing.T
	r    *rig
	dir  string
	root *hostfs.Root
	ops  *kernelOps
	// pending are asynchronous binds, done when the clock passes at.
	pending []pendingBind
}

type pendingBind struct {
	at  time.Time
	dev *fakeDev
}

// kernelOps is the Recorder, with the kernel's asynchronous work done as the clock moves.
type kernelOps struct {
	*sysops.Recorder
	k *kernel
}

func (o *kernelOps) Sleep(d time.Duration) {
	o.Recorder.Sleep(d)
	o.k.tick()
}

func (r *rig) start() *kernel {
	r.tree["/dev/kmsg"] = strings.Join(r.bootLog, "\n") + "\n"
	fsys, cleanup, err := vfst.NewTestFS(r.tree)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(cleanup)
	k := &kernel{t: r.t, r: r, dir: fsys.TempDir(), root: hostfs.FromFS(fsys.TempDir(), fsys)}
	k.ops = &kernelOps{Recorder: &sysops.Recorder{}, k: k}
	k.ops.OnWrite = k.write
	return k
}

// writes returns the recorded sysfs writes with paths under the root.
func (k *kernel) writes() []string {
	out := []string{}
	for _, c := range k.ops.Matching("write ") {
		out = append(out, strings.Replace(c, k.dir, "", 1))
	}
	return out
}

func (k *kernel) logf(format string, args ...any) {
	f, err := os.OpenFile(k.dir+"/dev/kmsg", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		k.t.Fatal(err)
	}
	defer f.Close()
	secs := 100 + k.ops.Now().Sub(time.Time{}).Seconds()
	fmt.Fprintf(f, "[%12.6f] %s\n", secs, fmt.Sprintf(format, args...))
}

func errno(p string, e syscall.Errno) error {
	return &fs.PathError{Op: "write", Path: p, Err: e}
}

// write is OnWrite: the store function of each attribute.
func (k *kernel) write(p, value string) error {
	attr := strings.TrimPrefix(p, k.dir)
	parts := strings.Split(strings.TrimPrefix(attr, "/"), "/")
	dev := k.r.devs[value]
	switch {
	case len(parts) == 4 && parts[0] == "sys" && parts[1] == "bus" && parts[3] == "drivers_probe":
		// drivers_probe_store: ENODEV for an unknown name, else success whatever happens.
		if dev == nil || dev.removed {
			return errno(p, syscall.ENODEV)
		}
		if !dev.bound {
			k.probe(dev, "drivers_probe")
		}
		return nil
	case len(parts) == 6 && parts[3] == "drivers" && parts[5] == "unbind":
		// unbind_store: only a device bound to this driver.
		if dev == nil || dev.removed || !dev.bound || dev.driver != parts[4] {
			return errno(p, syscall.ENODEV)
		}
		k.unbind(dev)
		return nil
	case len(parts) == 6 && parts[3] == "drivers" && parts[5] == "bind":
		// bind_store: a matching unbound device; the probe's error goes back to the writer.
		if dev == nil || dev.removed || dev.driver != parts[4] {
			return errno(p, syscall.ENODEV)
		}
		if dev.bound {
			return errno(p, syscall.EBUSY)
		}
		if dev.bus == "usb" && dev.driver == "usb" {
			k.bindNow(dev)
			for _, i := range dev.interfaces {
				k.add(i)
				k.probe(i, "usb-bind")
			}
			return nil
		}
		return k.probe(dev, "bind")
	case attr == "/sys/bus/pci/rescan" && value == "1":
		for _, d := range k.r.order {
			if d.removed {
				k.add(d)
				k.probe(d, "rescan")
			}
		}
		return nil
	case len(parts) == 6 && parts[1] == "bus" && parts[2] == "pci" && parts[5] == "remove" && value == "1":
		d := k.r.devs[parts[4]]
		if d == nil || d.removed {
			return errno(p, syscall.ENOENT)
		}
		k.remove(d)
		return nil
	}
	k.t.Errorf("unexpected write of %q to %s", value, attr)
	return errno(p, syscall.EINVAL)
}

// probe runs a device's probe and returns its error, as the kernel logs it.
func (k *kernel) probe(d *fakeDev, trigger string) error {
	res := d.probe(trigger)
	if res.firmwareFailed != "" {
		k.logf("%s %s: Direct firmware load for %s failed with error -2", d.driver, d.id, res.firmwareFailed)
	}
	switch {
	case res.bind && res.after > 0:
		k.pending = append(k.pending, pendingBind{at: k.ops.Now().Add(res.after), dev: d})
	case res.bind:
		k.bindNow(d)
	case res.firmwareFailed != "":
		k.logf("%s %s: probe with driver %s failed with error -2", d.driver, d.id, d.driver)
		return syscall.ENOENT
	}
	return nil
}

func (k *kernel) tick() {
	var left []pendingBind
	for _, b := range k.pending {
		switch {
		case b.dev.removed:
		case !k.ops.Now().Before(b.at):
			k.bindNow(b.dev)
		default:
			left = append(left, b)
		}
	}
	k.pending = left
}

func (k *kernel) bindNow(d *fakeDev) {
	link := d.dir + "/driver"
	target := relLink(link, path.Join("/sys/bus", d.bus, "drivers", d.driver)).Target
	if err := os.Symlink(target, k.dir+link); err != nil {
		k.t.Fatal(err)
	}
	d.bound = true
}

func (k *kernel) unbind(d *fakeDev) {
	if err := os.Remove(k.dir + d.dir + "/driver"); err != nil {
		k.t.Fatal(err)
	}
	d.bound = false
	for _, i := range d.interfaces {
		k.remove(i)
	}
}

// remove deletes the device (and what is below it) and its /sys/bus link.
func (k *kernel) remove(d *fakeDev) {
	if err := os.RemoveAll(k.dir + d.dir); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Remove(k.dir + busDevice(d.bus, d.id)); err != nil {
		k.t.Fatal(err)
	}
	d.removed, d.bound = true, false
	for _, i := range d.interfaces {
		i.removed, i.bound = true, false
	}
}

// add creates the device again, unbound.
func (k *kernel) add(d *fakeDev) {
	if err := os.MkdirAll(k.dir+d.dir, 0o755); err != nil {
		k.t.Fatal(err)
	}
	link := busDevice(d.bus, d.id)
	if err := os.Symlink(relLink(link, d.dir).Target, k.dir+link); err != nil {
		k.t.Fatal(err)
	}
	d.removed = false
}
