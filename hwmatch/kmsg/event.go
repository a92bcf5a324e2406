// Package kmsg reads the kernel log and picks out, per device, the firmware loads that failed,
// the ones that succeeded, and the driver probes that failed.
//
// It understands the /dev/kmsg record format, dmesg text (with or without timestamps, -r, -x,
// -T, --time-format iso) and syslog/journal lines whose tag is "kernel"; the format is detected
// line by line, so a mixed file is fine.
package kmsg

import "fmt"

// Kind says what the kernel reported about a device.
type Kind int

const (
	// FirmwareFailed: "Direct firmware load for <name> failed with error <N>" (mainline
	// drivers/base/firmware_loader/main.c) or "firmware: failed to load <name> (<N>)" (Debian's
	// kernel patch that logs every firmware request against its device).
	FirmwareFailed Kind = iota + 1
	// FirmwareLoaded: "firmware: direct-loading firmware <name>" (Debian's patch, printed at
	// info level), or the mainline dev_dbg lines "direct-loading <name>", "f/w decompressing
	// <name>", "using built-in <name>" (only with dynamic debug on).
	FirmwareLoaded
	// ProbeFailed: "probe with driver <drv> failed with error <N>" (drivers/base/dd.c since
	// Linux 5.18) or "<drv>: probe of <device> failed with error <N>" (older kernels).
	ProbeFailed
)

func (k Kind) String() string {
	switch k {
	case FirmwareFailed:
		return "firmware-failed"
	case FirmwareLoaded:
		return "firmware-loaded"
	case ProbeFailed:
		return "probe-failed"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one kernel log line about a device.
type Event struct {
	// Seq is the /dev/kmsg sequence number for a kmsg record, else the 1-based input line.
	Seq  uint64
	Kind Kind
	// Driver is the driver named by the line: the dev_printk prefix for firmware lines, the
	// driver whose probe failed for ProbeFailed. It may be empty (dev_printk prints "" for a
	// device without bus, class or driver).
	Driver string
	// Device is the sysfs name of the device ("0000:00:04.0", "1-4:1.0", "hci0"). Never empty.
	Device string
	// Subsystem is the SUBSYSTEM= the kernel attached to a /dev/kmsg record ("usb", "pci"),
	// empty for text input or records without it.
	Subsystem string
	// Firmware is the requested file name, relative to the firmware search path. Set for
	// FirmwareFailed and FirmwareLoaded.
	Firmware string
	// Errno is the error as the kernel printed it (negative, -2 is ENOENT); 0 for FirmwareLoaded.
	Errno int
}

// Log is what one read of the kernel log found.
type Log struct {
	// Events in input order (for /dev/kmsg that is sequence order).
	Events []Event
	// Records is how many kernel log records (text lines) were read.
	Records int
	// Dropped counts the times /dev/kmsg said records were overwritten before we read them
	// (EPIPE): events may be missing.
	Dropped int
	// Truncated is set when the input was longer than the read cap and the rest was not read.
	Truncated bool
}
