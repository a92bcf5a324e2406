package kmsg

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	vfs "github.com/twpayne/go-vfs/v4"
)

// maxInputBytes caps what ReadFile reads, so a huge or endless log cannot exhaust the memory
// of an initramfs. The kernel ring buffer is 2^CONFIG_LOG_BUF_SHIFT bytes (at most 32 MiB,
// commonly 128 KiB to 1 MiB) holding records plus metadata, so 16 MiB of text is all of any
// ordinary boot; past the cap Log.Truncated is set.
const maxInputBytes = 16 << 20

// kmsgReadBuffer is the buffer for one read(2) of /dev/kmsg. devkmsg_read
// (kernel/printk/printk.c) returns exactly one record per call and fails with EINVAL when the
// record does not fit, instead of returning part of it; records are at most 8 KiB
// (CONSOLE_EXT_LOG_MAX) formatted.
const kmsgReadBuffer = 16 << 10

// ReadFile reads the kernel log at path in fsys: the /dev/kmsg character device, or a text
// file in any format Parse accepts. A missing file gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func ReadFile(fsys vfs.FS, path string) (*Log, error) {
	info, err := fsys.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("kernel log %s: %w", path, err)
	}
	if info.Mode()&fs.ModeCharDevice != 0 {
		return readDevice(fsys, path)
	}
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kernel log %s: %w", path, err)
	}
	defer f.Close()
	limited := &io.LimitedReader{R: f, N: maxInputBytes}
	p := &parser{}
	inputWasCut := func() bool {
		if limited.N > 0 {
			return false
		}
		var probe [1]byte
		n, _ := f.Read(probe[:])
		p.log.Truncated = n > 0
		return p.log.Truncated
	}
	if err := p.readLines(limited, inputWasCut); err != nil {
		return nil, fmt.Errorf("kernel log %s: %w", path, err)
	}
	if !p.log.Truncated {
		inputWasCut()
	}
	return p.finish(), nil
}

// readDevice reads the /dev/kmsg records the kernel still holds, oldest first, and stops at
// the newest instead of waiting for more: one Read of a Follower.
func readDevice(fsys vfs.FS, path string) (*Log, error) {
	f, err := Follow(fsys, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	events, err := f.Read()
	if err != nil {
		return nil, err
	}
	return &Log{Events: events, Records: f.Records(), Dropped: f.Dropped, Truncated: f.Truncated}, nil
}

// readRecords calls record with each /dev/kmsg record until the kernel has no more (EAGAIN on
// the non-blocking descriptor), a read returns nothing, or limit bytes were read.
//
// The reads go through SyscallConn so that EAGAIN comes back to us: os.File.Read would hand the
// descriptor to the runtime poller and park until the kernel logs something new, which on a
// quiet system is never.
func readRecords(f *os.File, limit int, record func([]byte)) (dropped int, truncated bool, err error) {
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, false, err
	}
	buf := make([]byte, kmsgReadBuffer)
	total := 0
	for {
		if total >= limit {
			return dropped, true, nil
		}
		var n int
		var readErr error
		if err := conn.Read(func(fd uintptr) bool {
			n, readErr = syscall.Read(int(fd), buf)
			return true
		}); err != nil {
			return dropped, false, err
		}
		switch {
		case errors.Is(readErr, syscall.EINTR):
			continue
		case errors.Is(readErr, syscall.EAGAIN):
			return dropped, false, nil
		case errors.Is(readErr, syscall.EPIPE):
			// The ring buffer overwrote records we had not read yet; devkmsg_read has moved
			// us to the oldest one left, so reading on is right.
			dropped++
			continue
		case readErr != nil:
			return dropped, false, readErr
		case n <= 0:
			return dropped, false, nil
		}
		total += n
		record(buf[:n])
	}
}
