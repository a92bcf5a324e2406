package reprobe

import (
	"path"
	"time"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hwmatch/kmsg"
)

// driverOf reads the device's driver link: the bound driver's name ("" when none), and whether
// the device exists at all (a removed PCI device, or an interface of a USB device being
// re-enumerated, does not).
func (r *runner) driverOf(bus, id string) (driver string, present bool) {
	dev := busDevice(bus, id)
	if _, err := r.root.FS.Stat(dev); err != nil {
		return "", false
	}
	target, err := r.root.FS.Readlink(path.Join(dev, "driver"))
	if err != nil {
		return "", true
	}
	return path.Base(target), true
}

// wait polls the driver link every PollInterval until the device is bound or the timeout has
// passed since start. Every logEvery polls (the first one included) it reads the kernel log into
// events and stops early once the log says the device's probe failed: the probe is over. Most
// probes are over before the write returns (drivers_probe and bind probe synchronously); the
// wait is for drivers probed asynchronously and for devices that come back after a rescan.
func (r *runner) wait(t *target, start time.Time, events *[]kmsg.Event) {
	timeout := time.Duration(r.cfg.Timeout)
	for polls := 0; ; polls++ {
		if drv, _ := r.driverOf(t.bus, t.id); drv != "" {
			return
		}
		if polls%logEvery == 0 {
			*events = append(*events, r.log.since(t.id)...)
			if _, failed := lastProbeFailure(*events); failed {
				return
			}
		}
		if r.ops.Now().Sub(start) >= timeout {
			return
		}
		r.ops.Sleep(PollInterval)
	}
}

// logWatch follows the kernel log (kmsg.Follower) and hands out only what is new since the last
// read, by sequence number (/dev/kmsg's, or the line number of a text log).
type logWatch struct {
	fsys vfs.FS
	path string
	// follower is the open log; nil until it could be opened.
	follower *kmsg.Follower
	// mark is the highest sequence number handed out or skipped.
	mark uint64
	// events are all the events read so far.
	events []kmsg.Event
	// err is the last read's error.
	err error
}

func newLogWatch(fsys vfs.FS, p string) *logWatch {
	w := &logWatch{fsys: fsys, path: p}
	w.skip()
	return w
}

// read returns the events logged since the last read. A log that could not be opened is tried
// again.
func (w *logWatch) read() []kmsg.Event {
	if w.follower == nil {
		f, err := kmsg.Follow(w.fsys, w.path)
		if err != nil {
			w.err = err
			return nil
		}
		w.follower = f
	}
	events, err := w.follower.Read()
	w.err = err
	w.events = append(w.events, events...)
	return events
}

// close closes the log.
func (w *logWatch) close() {
	if w.follower != nil {
		w.follower.Close()
	}
}

// skip moves the mark past everything logged so far.
func (w *logWatch) skip() {
	for _, ev := range w.read() {
		w.mark = max(w.mark, ev.Seq)
	}
}

// since returns the events about device id logged after the mark and moves the mark past
// everything read.
func (w *logWatch) since(id string) []kmsg.Event {
	var out []kmsg.Event
	mark := w.mark
	for _, ev := range w.read() {
		if ev.Seq <= w.mark {
			continue
		}
		mark = max(mark, ev.Seq)
		if ev.Device == id {
			out = append(out, ev)
		}
	}
	w.mark = mark
	return out
}

// failedSoFar returns the firmware names whose latest event for the device, in everything read
// of the log, is a failure.
func (w *logWatch) failedSoFar(id string) []string {
	return (&kmsg.Log{Events: w.events}).Device(id).FirmwareFailed
}

// failedNames returns, once each in first-seen order, the firmware names whose last event
// among events is a failure: a driver that tries several names (iwlwifi's API versions) and
// loads one logs failures for the others.
func failedNames(events []kmsg.Event) []string {
	failed := map[string]bool{}
	var order []string
	for _, ev := range events {
		if ev.Kind != kmsg.FirmwareFailed && ev.Kind != kmsg.FirmwareLoaded {
			continue
		}
		if _, seen := failed[ev.Firmware]; !seen {
			order = append(order, ev.Firmware)
		}
		failed[ev.Firmware] = ev.Kind == kmsg.FirmwareFailed
	}
	out := []string{}
	for _, name := range order {
		if failed[name] {
			out = append(out, name)
		}
	}
	return out
}

// lastProbeFailure returns the last "probe ... failed" event among events. The kernel logs it
// for every error but ENODEV and ENXIO, which are debug-level "rejects match" lines
// (https://github.com/torvalds/linux/blob/v6.1/drivers/base/dd.c call_driver_probe); for those
// the wait runs to its timeout.
func lastProbeFailure(events []kmsg.Event) (kmsg.Event, bool) {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Kind == kmsg.ProbeFailed {
			return events[i], true
		}
	}
	return kmsg.Event{}, false
}
