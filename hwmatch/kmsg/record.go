package kmsg

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// kernelFacility is LOG_KERN. /dev/kmsg records written by user space (devkmsg_write in
// kernel/printk/printk.c) get LOG_USER or the facility the writer asked for, never 0, so the
// facility tells kernel lines from forged or relayed ones.
const kernelFacility = 0

// kmsgRecord is the first line of a /dev/kmsg record:
// "PRIO,SEQ,TS_USEC,FLAGS[,more fields];MESSAGE" (Documentation/ABI/testing/dev-kmsg).
type kmsgRecord struct {
	facility int
	seq      uint64
	message  string // still escaped
}

// parseRecordHeader reads a /dev/kmsg record line; ok is false for anything else.
func parseRecordHeader(line string) (kmsgRecord, bool) {
	header, message, found := strings.Cut(line, ";")
	if !found {
		return kmsgRecord{}, false
	}
	fields := strings.Split(header, ",")
	if len(fields) < 4 {
		return kmsgRecord{}, false
	}
	prio, err := strconv.ParseUint(fields[0], 10, 16)
	if err != nil {
		return kmsgRecord{}, false
	}
	seq, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return kmsgRecord{}, false
	}
	if _, err := strconv.ParseUint(fields[2], 10, 64); err != nil {
		return kmsgRecord{}, false
	}
	return kmsgRecord{facility: int(prio >> 3), seq: seq, message: message}, true
}

// parseDictLine reads a continuation line " KEY=VALUE" that follows a record header. The
// kernel adds SUBSYSTEM= and DEVICE= for dev_printk records (printk_info.dev_info).
func parseDictLine(line string) (key, value string, ok bool) {
	rest, ok := strings.CutPrefix(line, " ")
	if !ok {
		return "", "", false
	}
	key, value, ok = strings.Cut(rest, "=")
	if !ok || key == "" {
		return "", "", false
	}
	for _, c := range []byte(key) {
		if (c < 'A' || c > 'Z') && c != '_' && (c < '0' || c > '9') {
			return "", "", false
		}
	}
	return key, value, true
}

// unescapeKmsg undoes the escaping /dev/kmsg applies to message and dictionary text: every
// byte below ' ', from 0x7f up, and '\' itself becomes "\xNN" (kernel/printk/printk.c,
// info_print_ext_header / msg_add_ext_text). Written here because no library decodes exactly
// this: strconv.Unquote would also give meaning to "\n", "\t" and the like, which the kernel
// never emits. A backslash not followed by "x" and two hex digits is kept as it is.
func unescapeKmsg(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			var c [1]byte
			if _, err := hex.Decode(c[:], []byte(s[i+2:i+4])); err == nil {
				b.WriteByte(c[0])
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
