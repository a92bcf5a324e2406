package report

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// Logger writes human log lines to the console and to the kernel log, so they sit next to the
// driver messages they explain in `dmesg` and `journalctl -k`. Writing to /dev/kmsg is best
// effort: an initramfs may lack it, and logging must never fail a boot.
type Logger struct {
	mu      sync.Mutex
	console io.Writer
	kmsg    io.WriteCloser
}

// NewLogger logs to console and, when it can be opened for writing, to /dev/kmsg under root.
func NewLogger(root *hostfs.Root, console io.Writer, toKmsg bool) *Logger {
	l := &Logger{console: console}
	if toKmsg {
		if f, err := root.FS.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			l.kmsg = f
		}
	}
	return l
}

// Printf logs one line at info level.
func (l *Logger) Printf(format string, args ...any) { l.log(6, format, args...) }

// Warnf logs one line at warning level.
func (l *Logger) Warnf(format string, args ...any) { l.log(4, format, args...) }

// log writes "kairos-firmware: msg". A /dev/kmsg write is one record; "<N>" sets its level and
// the kernel keeps records of user space apart from its own (facility 1), so our lines are never
// mistaken for kernel messages by the kernel-log parser (kernel/printk/printk.c devkmsg_write).
func (l *Logger) log(level int, format string, args ...any) {
	if l == nil {
		return
	}
	msg := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.console != nil {
		fmt.Fprintf(l.console, "kairos-firmware: %s\n", msg)
	}
	if l.kmsg != nil {
		// One record per line: /dev/kmsg would otherwise split nothing and keep one long record.
		for _, line := range strings.Split(msg, "\n") {
			fmt.Fprintf(l.kmsg, "<%d>kairos-firmware: %s", 8+level, line)
		}
	}
}

// Close releases /dev/kmsg.
func (l *Logger) Close() error {
	if l == nil || l.kmsg == nil {
		return nil
	}
	return l.kmsg.Close()
}
