package kmsg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLineBytes bounds one input line. The kernel keeps at most 1 KiB of text per record
// (PRINTKRB_RECORD_MAX, earlier LOG_LINE_MAX, kernel/printk/internal.h) and formats a
// /dev/kmsg record, escapes included, into at most 8 KiB (CONSOLE_EXT_LOG_MAX, now
// PRINTK_MESSAGE_MAX = 2 KiB), so a longer line is no kernel line: it is skipped, never held
// whole.
const maxLineBytes = 64 << 10

// Parse reads kernel log text — /dev/kmsg records, dmesg output, syslog or journal lines, in
// any mix — and returns the firmware and probe events in it. Lines it does not understand are
// skipped; the only error is one from r.
func Parse(r io.Reader) (*Log, error) {
	p := &parser{}
	if err := p.readLines(r, nil); err != nil {
		return nil, err
	}
	return p.finish(), nil
}

// parser turns lines into events. A /dev/kmsg record is held until the lines after it show
// whether continuation lines (" SUBSYSTEM=usb") belong to it.
type parser struct {
	log     Log
	line    uint64
	pending pendingRecord
}

// pendingRecord is the /dev/kmsg record held (held is false when there is none).
type pendingRecord struct {
	kmsgRecord
	subsystem string
	held      bool
}

// readLines feeds every line of r to the parser. A last line without a newline is ignored when
// inputWasCut (if given) says r stopped at a read cap: that line is likely cut as well.
func (p *parser) readLines(r io.Reader, inputWasCut func() bool) error {
	br := bufio.NewReaderSize(r, maxLineBytes)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			p.line++
			p.log.Records++
			p.flush()
			if err := skipRestOfLine(br); err != nil {
				return err
			}
			continue
		}
		if len(line) > 0 && (err == nil || inputWasCut == nil || !inputWasCut()) {
			p.feed(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading kernel log line %d: %w", p.line+1, err)
		}
	}
}

func skipRestOfLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF || err == nil:
			return nil
		default:
			return err
		}
	}
}

// feed takes one line, with or without its newline.
func (p *parser) feed(raw []byte) {
	p.line++
	raw = bytes.TrimRight(raw, "\r\n")
	if p.pending.held {
		if key, value, ok := parseDictLine(raw); ok {
			// Only a record kept for its message needs its subsystem.
			if p.pending.message != "" && string(key) == "SUBSYSTEM" {
				p.pending.subsystem = unescapeKmsg(string(value))
			}
			return
		}
		p.flush()
	}
	p.log.Records++
	// Most lines are about something else: they skip the text parsing. Every message classify
	// recognises contains one of eventWords.
	interesting := mayReportEvent(raw)
	if facility, seq, message, ok := parseRecordHeader(raw); ok {
		// Held even when uninteresting, so its continuation lines are not read as lines;
		// only an interesting message is copied out of the read buffer.
		p.pending = pendingRecord{kmsgRecord: kmsgRecord{facility: facility, seq: seq}, held: true}
		if interesting {
			p.pending.message = string(message)
		}
		return
	}
	if !interesting {
		return
	}
	if msg, ok := textMessage(string(raw)); ok {
		p.emit(p.line, msg, "")
	}
}

var eventWords = [][]byte{
	[]byte("irmware"), // "Direct firmware load", "firmware: ..."
	[]byte("probe"),
	[]byte("direct-loading"),
	[]byte("f/w decompressing"),
	[]byte("using built-in"),
}

func mayReportEvent(line []byte) bool {
	for _, word := range eventWords {
		if bytes.Contains(line, word) {
			return true
		}
	}
	return false
}

// flush classifies the held /dev/kmsg record.
func (p *parser) flush() {
	if !p.pending.held {
		return
	}
	rec := p.pending
	p.pending = pendingRecord{}
	if rec.facility != kernelFacility || rec.message == "" {
		return
	}
	msg := unescapeKmsg(rec.message)
	// A message can span lines (the kernel escapes the newline as \x0a); dev_printk puts its
	// prefix on the first one only.
	msg, _, _ = strings.Cut(msg, "\n")
	p.emit(rec.seq, msg, rec.subsystem)
}

func (p *parser) emit(seq uint64, msg, subsystem string) {
	ev, ok := classify(msg)
	if !ok {
		return
	}
	ev.Seq, ev.Subsystem = seq, subsystem
	p.log.Events = append(p.log.Events, ev)
}

func (p *parser) finish() *Log {
	p.flush()
	log := p.log
	return &log
}
