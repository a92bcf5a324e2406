package kmsg

import (
	"strconv"
	"strings"
)

// maxDecorations bounds how many one-word prefixes classify looks past. Dynamic debug adds
// "module:function:line: " in front of the dev_printk prefix when its m/f/l flags are set
// (lib/dynamic_debug.c, __dynamic_emit_prefix), and the debug-only success line is exactly
// the one that gets it.
const maxDecorations = 2

// classify reads one kernel message (record header and timestamp already removed) and returns
// the event it reports. Seq and Subsystem are left for the caller.
//
// dev_printk prints "<driver> <device>: <text>" (drivers/base/core.c, __dev_printk with
// dev_driver_string and dev_name). Neither part contains ": " — sysfs names do contain ':' —
// so the prefix ends at the first ": ".
func classify(msg string) (Event, bool) {
	for range maxDecorations + 1 {
		head, body, found := strings.Cut(msg, ": ")
		if !found {
			return Event{}, false
		}
		if driver, device, ok := splitDevicePrefix(head); ok {
			return classifyDeviceMessage(driver, device, body)
		}
		if strings.ContainsRune(head, ' ') {
			return Event{}, false
		}
		if ev, ok := classifyOldProbe(head, body); ok {
			return ev, true
		}
		msg = body
	}
	return Event{}, false
}

// splitDevicePrefix splits "<driver> <device>". The driver is empty when the device has no
// driver, bus or class: dev_printk then prints " <device>: ".
func splitDevicePrefix(head string) (driver, device string, ok bool) {
	driver, device, found := strings.Cut(head, " ")
	if !found || !isSysfsName(device) || (driver != "" && !isSysfsName(driver)) {
		return "", "", false
	}
	return driver, device, true
}

// Message texts, from drivers/base/firmware_loader/main.c (_request_firmware,
// fw_get_filesystem_firmware, _request_firmware_prepare), the Debian kernel's
// debian/patches/bugfix/all/firmware_class-log-every-success-and-failure.patch, and
// drivers/base/dd.c (call_driver_probe; really_probe before 5.18).
const (
	directLoadFailedPrefix = "Direct firmware load for "
	debianLoadFailedPrefix = "firmware: failed to load "
	probeFailedPrefix      = "probe with driver "
	oldProbeFailedPrefix   = "probe of "
	failedWithError        = " failed with error "
)

// loadedPrefixes introduce the name of a firmware file the kernel found. Only Debian's line is
// printed at info level; the mainline ones are dev_dbg and show up with dynamic debug on.
// Mainline prints "direct-loading" only for an uncompressed file; a compressed one gets
// "f/w decompressing" just before decompression, which can still fail — the loader then goes
// on and ends with "Direct firmware load ... failed", a later event that wins (see Log.Device).
// Debian's text also contains ": direct-loading ", so it is tried first.
var loadedPrefixes = []string{
	"firmware: direct-loading firmware ", // Debian, dev_info
	"direct-loading ",                    // mainline, dev_dbg
	"f/w decompressing ",                 // mainline, dev_dbg, .zst/.xz
	"using built-in ",                    // mainline, dev_dbg, CONFIG_EXTRA_FIRMWARE
}

func classifyDeviceMessage(driver, device, body string) (Event, bool) {
	ev := Event{Driver: driver, Device: device}
	if rest, ok := strings.CutPrefix(body, directLoadFailedPrefix); ok {
		name, errno, ok := cutFailedWithError(rest)
		if !ok || !isFirmwareName(name) {
			return Event{}, false
		}
		ev.Kind, ev.Firmware, ev.Errno = FirmwareFailed, name, errno
		return ev, true
	}
	if rest, ok := strings.CutPrefix(body, debianLoadFailedPrefix); ok {
		// "<name> (<N>)"
		rest = strings.TrimRight(rest, " \t\r")
		open := strings.LastIndex(rest, " (")
		if open < 0 || !strings.HasSuffix(rest, ")") {
			return Event{}, false
		}
		name := strings.TrimSpace(rest[:open])
		errno, err := strconv.Atoi(rest[open+2 : len(rest)-1])
		if !isFirmwareName(name) || err != nil {
			return Event{}, false
		}
		ev.Kind, ev.Firmware, ev.Errno = FirmwareFailed, name, errno
		return ev, true
	}
	for _, prefix := range loadedPrefixes {
		if rest, ok := strings.CutPrefix(body, prefix); ok {
			name := strings.TrimSpace(rest)
			if !isFirmwareName(name) {
				return Event{}, false
			}
			ev.Kind, ev.Firmware = FirmwareLoaded, name
			return ev, true
		}
	}
	if rest, ok := strings.CutPrefix(body, probeFailedPrefix); ok {
		// "<drv> failed with error <N>": the driver whose probe failed, which after the
		// failure is no longer the one dev_driver_string prints.
		probed, errno, ok := cutFailedWithError(rest)
		if !ok || !isSysfsName(probed) {
			return Event{}, false
		}
		ev.Kind, ev.Driver, ev.Errno = ProbeFailed, probed, errno
		return ev, true
	}
	return Event{}, false
}

// classifyOldProbe reads the pre-5.18 dd.c line "<drv>: probe of <device> failed with error <N>",
// printed with pr_warn, so without a device prefix.
func classifyOldProbe(driver, body string) (Event, bool) {
	rest, ok := strings.CutPrefix(body, oldProbeFailedPrefix)
	if !ok || !isSysfsName(driver) {
		return Event{}, false
	}
	device, errno, ok := cutFailedWithError(rest)
	if !ok || !isSysfsName(device) {
		return Event{}, false
	}
	return Event{Kind: ProbeFailed, Driver: driver, Device: device, Errno: errno}, true
}

// cutFailedWithError splits "<subject> failed with error <N>".
func cutFailedWithError(s string) (subject string, errno int, ok bool) {
	at := strings.LastIndex(s, failedWithError)
	if at < 0 {
		return "", 0, false
	}
	subject = strings.TrimSpace(s[:at])
	errno, err := strconv.Atoi(strings.TrimSpace(s[at+len(failedWithError):]))
	if subject == "" || err != nil {
		return "", 0, false
	}
	return subject, errno, true
}

// isSysfsName reports whether s can be the name of a device or driver in sysfs. Callers build
// /sys paths from these names, so a log line must not be able to steer them elsewhere. The
// kernel never makes such names: kobject_set_name_vargs (lib/kobject.c) turns '/' into '!',
// and "." and ".." would collide with directory entries.
func isSysfsName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if c == '/' || c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// isFirmwareName reports whether s can be a firmware name the kernel looked up: a relative
// path below the search directories, without control characters. Callers join these names to
// firmware directories; the kernel itself refuses names with a ".." element before looking
// them up (name_contains_dotdot in drivers/base/firmware_loader/main.c, 2024, backported to
// the stable series), so no real failure line carries one.
func isFirmwareName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	for element := range strings.SplitSeq(s, "/") {
		if element == ".." {
			return false
		}
	}
	return true
}
