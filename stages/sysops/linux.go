package sysops

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Linux is Ops on the running kernel.
type Linux struct{}

var _ Ops = Linux{}

// Mount is mount(2).
func (Linux) Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s, %q): %w", source, target, fstype, data, err)
	}
	return nil
}

// Unmount is umount2(2).
func (Linux) Unmount(target string, flags int) error {
	if err := unix.Unmount(target, flags); err != nil {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// LoopAttach uses LOOP_CTL_GET_FREE and LOOP_CONFIGURE (Linux 5.8+), which sets the backing file
// and its parameters in one ioctl, so a half-configured device is never visible
// (drivers/block/loop.c). LO_FLAGS_AUTOCLEAR frees the device when its last opener closes and no
// mount uses it (lo_release), so the returned hold must stay open until the device is mounted,
// as util-linux's mount does; afterwards an unmount alone releases it. A free device can be taken
// by someone else between the two ioctls: that gives EBUSY, and the next free one is tried.
func (Linux) LoopAttach(file string, offset, size int64) (string, io.Closer, error) {
	backing, err := os.Open(file)
	if err != nil {
		return "", nil, fmt.Errorf("loop: %w", err)
	}
	defer backing.Close()
	ctl, err := openMiscNode("/dev/loop-control", loopCtrlMinor)
	if err != nil {
		return "", nil, fmt.Errorf("loop: %w", err)
	}
	defer ctl.Close()
	for attempt := 0; attempt < 8; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("loop: LOOP_CTL_GET_FREE: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		loop, err := os.OpenFile(dev, os.O_RDONLY, 0)
		if err != nil {
			return "", nil, fmt.Errorf("loop: %w", err)
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Offset = uint64(offset)
		cfg.Info.Sizelimit = uint64(size)
		cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], file)
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) {
			loop.Close()
			continue
		}
		if err != nil {
			loop.Close()
			return "", nil, fmt.Errorf("loop: LOOP_CONFIGURE %s for %s: %w", dev, file, err)
		}
		return dev, loop, nil
	}
	return "", nil, fmt.Errorf("loop: no free loop device for %s after 8 attempts", file)
}

// Misc device minors (include/linux/miscdevice.h).
const (
	miscMajor     = 10
	loopCtrlMinor = 237
)

// openMiscNode opens a misc character device, creating its node first when devtmpfs has none:
// while the driver is a module that is not loaded yet, the node does not exist, and the first
// open of a node made by hand makes the kernel load the module (misc_open asks
// request_module("char-major-10-<minor>"), drivers/char/misc.c; kmod's static-nodes and
// systemd-tmpfiles create these nodes at boot for the same reason, which a bare initramfs lacks).
func openMiscNode(path string, minor uint32) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if !errors.Is(err, os.ErrNotExist) {
		return f, err
	}
	if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(miscMajor, minor))); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	return os.OpenFile(path, os.O_RDWR, 0)
}

// WriteAttr opens the attribute write-only without O_CREAT or O_TRUNC (sysfs attributes exist
// or the write is meaningless) and writes value in one call: sysfs hands each write(2) to the
// attribute's store() whole.
func (Linux) WriteAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, cerr)
	}
	return nil
}

// Now is time.Now.
func (Linux) Now() time.Time { return time.Now() }

// Sleep is time.Sleep.
func (Linux) Sleep(d time.Duration) { time.Sleep(d) }
