package kmsg

import (
	"bytes"
	"encoding/hex"
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

// parseRecordHeader reads a /dev/kmsg record line; ok is false for anything else. The message
// it returns is a part of line (still escaped): most records are of no interest, and only the
// caller knows whether this one is worth a copy. Nothing here allocates: a boot's log has
// thousands of records, read at every re-probe attempt.
func parseRecordHeader(line []byte) (facility int, seq uint64, message []byte, ok bool) {
	semi := bytes.IndexByte(line, ';')
	if semi < 0 {
		return 0, 0, nil, false
	}
	header, message := line[:semi], line[semi+1:]
	var fields [3][]byte
	for i := range fields {
		comma := bytes.IndexByte(header, ',')
		if comma < 0 {
			return 0, 0, nil, false // fewer than four fields
		}
		fields[i], header = header[:comma], header[comma+1:]
	}
	prio, ok := parseDecimal(fields[0], 1<<16-1)
	if !ok {
		return 0, 0, nil, false
	}
	seq, ok = parseDecimal(fields[1], 1<<64-1)
	if !ok {
		return 0, 0, nil, false
	}
	if _, ok := parseDecimal(fields[2], 1<<64-1); !ok {
		return 0, 0, nil, false
	}
	return int(prio >> 3), seq, message, true
}

// parseDecimal reads an unsigned decimal number of at most max, as strconv.ParseUint(s, 10, n)
// does for max 2^n-1, from bytes and without allocating.
func parseDecimal(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (max-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseDictLine reads a continuation line " KEY=VALUE" that follows a record header. The
// kernel adds SUBSYSTEM= and DEVICE= for dev_printk records (printk_info.dev_info). key and
// value are parts of line.
func parseDictLine(line []byte) (key, value []byte, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte{' '})
	if !ok {
		return nil, nil, false
	}
	key, value, ok = bytes.Cut(rest, []byte{'='})
	if !ok || len(key) == 0 {
		return nil, nil, false
	}
	for _, c := range key {
		if (c < 'A' || c > 'Z') && c != '_' && (c < '0' || c > '9') {
			return nil, nil, false
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
