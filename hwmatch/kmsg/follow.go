package kmsg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	vfs "github.com/twpayne/go-vfs/v4"
)

// Follower reads a kernel log as it grows: each Read returns the events of what was logged since
// the one before (the first, of everything the log holds). The re-probe watches the log this way
// after every attempt; reading and parsing the whole ring buffer again each time cost it a
// millisecond or more per look, and all that garbage, while drivers probe.
//
// On /dev/kmsg the descriptor stays open: the kernel keeps each reader's position and hands out
// the records logged since, one per read(2) (devkmsg_read, kernel/printk/printk.c). A text log
// is read on from where the last Read stopped; a last line without its newline waits for it, and
// a /dev/kmsg record copied into a text log is taken as written whole (its dictionary lines with
// its header), as anything appending records writes it.
type Follower struct {
	path   string
	file   *os.File
	device bool
	p      parser
	// partial is a text log's last line while its newline has not been written yet; overlong is
	// set once it grew past maxLineBytes: no kernel line is that long, and Parse skips it too.
	partial  []byte
	overlong bool
	// Dropped counts the times /dev/kmsg said records were overwritten before they were read.
	Dropped int
	// Truncated is set when a Read of /dev/kmsg stopped at maxInputBytes with more to read.
	Truncated bool
}

// Follow opens the kernel log at path in fsys (the /dev/kmsg character device or a text file in
// any format Parse accepts) for Read. A missing file gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func Follow(fsys vfs.FS, path string) (*Follower, error) {
	info, err := fsys.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("kernel log %s: %w", path, err)
	}
	device := info.Mode()&fs.ModeCharDevice != 0
	flags := os.O_RDONLY
	if device {
		flags |= syscall.O_NONBLOCK // see readRecords
	}
	f, err := fsys.OpenFile(path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("kernel log %s: %w", path, err)
	}
	return &Follower{path: path, file: f, device: device}, nil
}

// Read returns the events logged since the last Read, reading at most maxInputBytes of log.
func (f *Follower) Read() ([]Event, error) {
	if f.file == nil {
		return nil, fmt.Errorf("kernel log %s: %w", f.path, fs.ErrClosed)
	}
	var err error
	if f.device {
		var dropped int
		var truncated bool
		dropped, truncated, err = readRecords(f.file, maxInputBytes, func(record []byte) {
			for len(record) > 0 {
				line, rest, _ := bytes.Cut(record, []byte{'\n'})
				f.p.feed(line)
				record = rest
			}
		})
		f.Dropped += dropped
		f.Truncated = f.Truncated || truncated
	} else {
		err = f.readText()
	}
	// Every record read is whole (one per read(2) on /dev/kmsg; whole lines of a text log):
	// the one held for its dictionary lines is complete too.
	f.p.flush()
	events := f.p.log.Events
	f.p.log.Events = nil
	if err != nil {
		return events, fmt.Errorf("kernel log %s: %w", f.path, err)
	}
	return events, nil
}

// readText feeds the whole lines appended to a text log since the last read.
func (f *Follower) readText() error {
	buf := make([]byte, 64<<10)
	total := 0
	for total < maxInputBytes {
		n, err := f.file.Read(buf)
		total += n
		data := buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				if !f.overlong {
					f.partial = append(f.partial, data...)
				}
				if len(f.partial) > maxLineBytes {
					f.partial, f.overlong = f.partial[:0], true
				}
				break
			}
			line := data[:i]
			if len(f.partial) > 0 {
				line = append(f.partial, line...)
				f.partial = f.partial[:0]
			}
			if f.overlong {
				f.overlong = false
				f.p.line++
				f.p.log.Records++
				f.p.flush()
			} else {
				f.p.feed(line)
			}
			data = data[i+1:]
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
	}
	return nil
}

// Records is how many records (text lines) were read so far.
func (f *Follower) Records() int { return f.p.log.Records }

// Close closes the log.
func (f *Follower) Close() error {
	if f.file == nil {
		return nil
	}
	err := f.file.Close()
	f.file = nil
	return err
}
