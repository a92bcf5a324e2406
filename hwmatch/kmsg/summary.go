package kmsg

import (
	"slices"
)

// DeviceSummary is what the log says about one device.
type DeviceSummary struct {
	Device string
	// Driver is the last non-empty driver named in an event for the device.
	Driver string
	// Subsystem is the last SUBSYSTEM= seen in a /dev/kmsg record for the device ("" for text).
	Subsystem string
	// FirmwareFailed lists, once each and in first-seen order, the firmware names whose last
	// event is a failure. A name loaded successfully after failing is left out: the device
	// has it now.
	FirmwareFailed []string
	// FirmwareLoaded lists, likewise, the names whose last event is a successful load.
	FirmwareLoaded []string
	// ProbeFailed is set when a probe of the device failed; ProbeDriver and ProbeErrno are
	// from the last such failure. The log never says that a later probe succeeded (only
	// initcall_debug would), so whether the device is bound now is for sysfs to tell.
	ProbeFailed bool
	ProbeDriver string
	ProbeErrno  int
}

// Device summarises the events for device id (a sysfs name); an id without events gives a
// summary with only Device set.
func (l *Log) Device(id string) DeviceSummary {
	summary := DeviceSummary{Device: id}
	// For each firmware name, whether its latest event is a failure; order keeps first sight.
	failedNow := map[string]bool{}
	var order []string
	for _, ev := range l.Events {
		if ev.Device != id {
			continue
		}
		if ev.Driver != "" {
			summary.Driver = ev.Driver
		}
		if ev.Subsystem != "" {
			summary.Subsystem = ev.Subsystem
		}
		switch ev.Kind {
		case FirmwareFailed, FirmwareLoaded:
			if _, seen := failedNow[ev.Firmware]; !seen {
				order = append(order, ev.Firmware)
			}
			failedNow[ev.Firmware] = ev.Kind == FirmwareFailed
		case ProbeFailed:
			summary.ProbeFailed = true
			summary.ProbeDriver = ev.Driver
			summary.ProbeErrno = ev.Errno
		}
	}
	for _, name := range order {
		if failedNow[name] {
			summary.FirmwareFailed = append(summary.FirmwareFailed, name)
		} else {
			summary.FirmwareLoaded = append(summary.FirmwareLoaded, name)
		}
	}
	return summary
}

// Devices returns the sorted ids of every device with at least one event.
func (l *Log) Devices() []string {
	var ids []string
	for _, ev := range l.Events {
		ids = append(ids, ev.Device)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
