package hostfs

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// ReadAttr reads a small file under the root, such as a sysfs attribute (at most a page), with
// open, read until end of file (a short read), and close. os.ReadFile, which FS.ReadFile is, also registers
// every file with the runtime's poller (fcntl F_GETFL/F_SETFL twice and an epoll_ctl that fails
// for regular files) and fstats it: nine system calls for a 5-byte attribute instead of three.
// Detect reads some 500 attributes, which made that half of its time (strace of
// BenchmarkDetectLargestMachine). The file is read at Real(p), where FS reads it too.
// Errors are *fs.PathError naming p, as FS's.
func (r *Root) ReadAttr(p string) ([]byte, error) {
	fd, err := open(r.Real(p))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: p, Err: err}
		case n == 0:
			return buf, nil
		}
		room := cap(buf) - len(buf)
		buf = buf[:len(buf)+n]
		if n < room {
			// A read of a regular file or a sysfs attribute comes back short only at the end
			// of the file (an attribute's show() output is returned whole,
			// kernfs_fop_read_iter / seq_read_iter): the read that would return 0 is
			// saved, one system call in four.
			return buf, nil
		}
	}
}

func open(p string) (int, error) {
	for {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}
