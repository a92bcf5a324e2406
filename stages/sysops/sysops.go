// Package sysops is the one small interface through which apply changes the running system:
// mounts, loop devices, device-mapper targets and writes to sysfs attributes. The real
// implementation makes the syscalls itself (no external programs at boot); tests substitute a
// Recorder. Paths are real paths: callers resolve them under --root first.
package sysops

import (
	"io"
	"time"
)

// Ops is every side effect apply has on the kernel.
type Ops interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	// LoopAttach attaches size bytes of file from offset (size 0: to the end) to a free loop
	// device, read-only and auto-clearing, and returns its path (/dev/loopN) and a hold on it.
	// Close the hold once the device is mounted (or not needed): an auto-clearing device with
	// no holder and no mount frees itself, so a failed mount leaks nothing.
	LoopAttach(file string, offset, size int64) (dev string, hold io.Closer, err error)
	// WriteAttr writes value to a sysfs or procfs attribute in one write(2), as `echo -n` does.
	WriteAttr(path, value string) error
	// Now and Sleep let tests run timeouts without waiting.
	Now() time.Time
	Sleep(d time.Duration)
}
