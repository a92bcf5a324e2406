package kmsg

import (
	"regexp"
	"strconv"
	"strings"
)

// Leading timestamps of the text formats. Each alternative names the tool that prints it.
var (
	// dmesg and journalctl -o short-monotonic: "[   49.065898]".
	monotonicStamp = `\[ *\d+\.\d+\]`
	// dmesg -T: "[Thu Sep  4 09:19:13 2025]".
	ctimeStamp = `\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2} \d{4}\]`
	// syslog and journalctl -o short / short-precise: "Sep 04 09:19:13", "Sep  4 09:19:13.123".
	syslogStamp = `[A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2}(?:\.\d+)?`
	// journalctl -o short-iso, rsyslog, dmesg --time-format iso:
	// "2025-09-04T09:19:13+0000", "2025-09-04T09:19:13,065898+00:00".
	isoStamp = `\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?`
	// journalctl -o short-unix: "1693819153.065898".
	unixStamp = `\d{9,}\.\d+`

	leadingStamp = regexp.MustCompile(`^(?:(` + monotonicStamp + `|` + ctimeStamp + `|` + isoStamp +
		`)|(` + syslogStamp + `|` + unixStamp + `)) `)
	// CONFIG_PRINTK_CALLER adds "[  T123]" or "[    C2]" after the timestamp.
	callerStamp = regexp.MustCompile(`^\[ *[TC]\d+\] `)
	// "<host> <tag>[<pid>]: " after a syslog/journal timestamp.
	syslogSource = regexp.MustCompile(`^\S+ ([^\s\[\]:]+)(\[\d+\])?: `)
	// dmesg -x: "kern  :warn  : " (util-linux prints "%-6s:%-6s: ").
	decodedFacility = regexp.MustCompile(`^([a-z0-9]+) *:([a-z]+) *: `)
	// imklog and journald may keep the kernel's own timestamp after "kernel: ".
	kernelStamp = regexp.MustCompile(`^` + monotonicStamp + ` `)
)

// textMessage strips what the text formats put in front of a kernel message and reports
// whether the line is one the kernel printed. Lines that syslog, the journal or dmesg -r/-x
// mark as coming from user space are refused: a program (this one included) may log a copy
// of a kernel line, and that is not a second event.
//
// Exactly one space is removed after a header, because a device without driver, bus or class
// makes dev_printk print " <device>: " with a leading space.
func textMessage(line string) (string, bool) {
	// dmesg -r: "<4>[   49.065898] msg", the number being facility<<3 | level.
	if strings.HasPrefix(line, "<") {
		if end := strings.IndexByte(line, '>'); end > 1 {
			if prio, err := strconv.Atoi(line[1:end]); err == nil {
				if prio>>3 != kernelFacility {
					return "", false
				}
				line = line[end+1:]
			}
		}
	}
	if m := decodedFacility.FindStringSubmatch(line); m != nil {
		if m[1] != "kern" {
			return "", false
		}
		line = line[len(m[0]):]
	}
	stamp := leadingStamp.FindStringSubmatch(line)
	if stamp == nil {
		// dmesg -t, or a line that is not from a log at all; classify decides.
		return line, true
	}
	line = line[len(stamp[0]):]
	if m := callerStamp.FindString(line); m != "" {
		line = line[len(m):]
	}
	if m := syslogSource.FindStringSubmatch(line); m != nil {
		switch {
		case m[1] == "kernel" && m[2] == "":
			line = line[len(m[0]):]
			if ts := kernelStamp.FindString(line); ts != "" {
				line = line[len(ts):]
			}
			return line, true
		case m[2] != "":
			// "systemd[1]: ..." and every other tag with a pid is user space.
			return "", false
		}
	}
	if stamp[2] != "" {
		// A syslog-style timestamp is always followed by "<host> <tag>:"; the tag is not
		// "kernel", so this is not a kernel line.
		return "", false
	}
	// A dmesg timestamp: the rest is the message, even when it looks like "<host> <tag>: "
	// ("bluetooth hci0: firmware: ...").
	return line, true
}
