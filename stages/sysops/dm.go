package sysops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device-mapper through its ioctls on /dev/mapper/control, as libdevmapper and systemd's
// dm-util.c talk to it. No dmsetup or veritysetup is needed at boot.
//
//	https://github.com/torvalds/linux/blob/master/include/uapi/linux/dm-ioctl.h
//	https://github.com/torvalds/linux/blob/master/drivers/md/dm-ioctl.c

// dmControl is the control node; dmCtrlMinor is MAPPER_CTRL_MINOR
// (https://github.com/torvalds/linux/blob/master/include/linux/miscdevice.h).
const (
	dmControl   = "/dev/mapper/control"
	dmCtrlMinor = 236
)

// dmVersion is the interface version sent with every ioctl. check_version() in dm-ioctl.c
// refuses a different major or a minor newer than the kernel's, and writes the kernel's own
// version back; 4.0.0 asks for nothing newer than the ioctls used here.
var dmVersion = [3]uint32{unix.DM_VERSION_MAJOR, 0, 0}

// VerityCreate sets the device up in the order libdevmapper does (dm_task_run for "create"
// with a table): DM_DEV_CREATE makes the mapped device without a table; DM_TABLE_LOAD gives it
// an inactive table with the one verity target; DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes
// it, which swaps that table in and makes the device usable. The device is removed again if a
// later step fails.
func (Linux) VerityCreate(name string, t VerityTarget) (string, error) {
	dev, err := verityCreate(name, t)
	if err != nil {
		return "", fmt.Errorf("dm-verity %s: %w", name, err)
	}
	return dev, nil
}

func verityCreate(name string, t VerityTarget) (string, error) {
	if err := checkDMName(name); err != nil {
		return "", err
	}
	// The devices go into the table as major:minor, which dm_get_device() parses before it
	// tries a path: no path lookup in the kernel, no dependence on /dev's content there.
	data, err := blockDevNumber(t.DataDev)
	if err != nil {
		return "", fmt.Errorf("data device: %w", err)
	}
	hash, err := blockDevNumber(t.HashDev)
	if err != nil {
		return "", fmt.Errorf("hash device: %w", err)
	}
	table, err := t.table(data, hash)
	if err != nil {
		return "", err
	}
	ctl, err := openDMControl()
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	v, err := dmIoctl(ctl, unix.DM_VERSION, "DM_VERSION", "", 0, nil)
	if err != nil {
		return "", err
	}
	if v.Version[0] != unix.DM_VERSION_MAJOR {
		return "", fmt.Errorf("device-mapper ioctl interface %d.%d.%d, this program speaks %d.x", v.Version[0], v.Version[1], v.Version[2], unix.DM_VERSION_MAJOR)
	}

	created, err := dmIoctl(ctl, unix.DM_DEV_CREATE, "DM_DEV_CREATE", name, 0, nil)
	if errors.Is(err, unix.EBUSY) {
		// dm_hash_insert() refuses a name in use: ours from an earlier merge whose removal is
		// deferred until its last user closes it, or someone else's.
		return "", fmt.Errorf("%w (a device-mapper device of that name exists already: one of an earlier merge still in use?)", err)
	}
	if err != nil {
		return "", err
	}
	done := false
	defer func() {
		// Deferred: once resumed, udev's blkid may have the new device open for a moment.
		if !done {
			_, _ = dmIoctl(ctl, unix.DM_DEV_REMOVE, "DM_DEV_REMOVE", name, unix.DM_DEFERRED_REMOVE, nil)
		}
	}()
	// DM_READONLY_FLAG makes the table read-only (get_mode() in dm-ioctl.c): verity_ctr refuses
	// a writable table ("Device must be readonly"), and the read-only loop devices could not be
	// opened for writing anyway. do_resume() then marks the disk read-only too.
	if _, err := dmIoctl(ctl, unix.DM_TABLE_LOAD, "DM_TABLE_LOAD", name, unix.DM_READONLY_FLAG, targetSpec("verity", t.Sectors(), table)); err != nil {
		// dm_table_add_target() puts the target's own reason in the kernel log only
		// ("device-mapper: table: 254:0: verity: Data device lookup failed").
		return "", fmt.Errorf("table %q (%d sectors): %w (the kernel log has the target's reason)", table, t.Sectors(), err)
	}
	if _, err := dmIoctl(ctl, unix.DM_DEV_SUSPEND, "DM_DEV_SUSPEND (resume)", name, 0, nil); err != nil {
		return "", err
	}
	node, err := blockNode("/dev", unix.Major(created.Dev), unix.Minor(created.Dev))
	if err != nil {
		return "", err
	}
	done = true
	return node, nil
}

// VerityRemove asks for a deferred removal (DM_DEFERRED_REMOVE): dev_remove() in dm-ioctl.c
// removes a device nobody has open at once and marks an open one, which the kernel then removes
// when its last opener closes it (dm_blk_close) — what a lazily detached mount needs, as
// systemd's dm_deferred_remove() does for the devices it sets up. (The flag came with interface
// 4.27, Linux 3.13; an older kernel ignores it and refuses to remove an open device, EBUSY.)
func (Linux) VerityRemove(name string) error {
	if err := checkDMName(name); err != nil {
		return fmt.Errorf("dm-verity %s: remove: %v", name, err)
	}
	ctl, err := os.OpenFile(dmControl, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		// Without the control node device-mapper was never loaded (VerityCreate makes the
		// node): there is no device to remove.
		return fmt.Errorf("dm-verity %s: remove: no %s: %w", name, dmControl, unix.ENXIO)
	}
	if err != nil {
		return fmt.Errorf("dm-verity %s: remove: %w", name, err)
	}
	defer ctl.Close()
	if _, err := dmIoctl(ctl, unix.DM_DEV_REMOVE, "DM_DEV_REMOVE (deferred)", name, unix.DM_DEFERRED_REMOVE, nil); err != nil {
		return fmt.Errorf("dm-verity %s: remove: %w", name, err)
	}
	return nil
}

// checkDMName applies dm-ioctl.c's rules: a name fits DM_NAME_LEN with its NUL and has no "/"
// (check_name()); an empty one would address the device by number instead.
func checkDMName(name string) error {
	switch {
	case name == "":
		return errors.New("empty device-mapper name")
	case len(name) >= unix.DM_NAME_LEN:
		return fmt.Errorf("device-mapper name of %d bytes, at most %d", len(name), unix.DM_NAME_LEN-1)
	case strings.ContainsAny(name, "/\x00"):
		return errors.New("a device-mapper name cannot contain / or NUL")
	}
	return nil
}

// openDMControl opens /dev/mapper/control, creating /dev/mapper and the node when devtmpfs has
// none: until dm-mod is loaded there is no node, and the first open of one made by hand loads
// it (the module's alias char-major-10-236; see openMiscNode).
func openDMControl() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(dmControl), 0o755); err != nil {
		return nil, fmt.Errorf("device-mapper: %w", err)
	}
	ctl, err := openMiscNode(dmControl, dmCtrlMinor)
	if err != nil {
		return nil, fmt.Errorf("device-mapper: %w (is dm-mod available?)", err)
	}
	return ctl, nil
}

// dmIoctl sends one command: a struct dm_ioctl followed by payload (data_start is where the
// payload begins, data_size the whole buffer) and returns the header the kernel wrote back.
// Flags the kernel sets on output (DM_BUFFER_FULL_FLAG on a status that did not fit) do not
// matter for the commands used here.
func dmIoctl(ctl *os.File, cmd uintptr, what, name string, flags uint32, payload []byte) (*unix.DmIoctl, error) {
	buf, err := dmBuffer(name, flags, payload)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), cmd, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
		return nil, fmt.Errorf("%s: %w", what, errno)
	}
	var out unix.DmIoctl
	copy(structBytes(&out), buf)
	return &out, nil
}

// structBytes is the memory of v, a struct in the kernel's layout (x/sys/unix generates
// DmIoctl and DmTargetSpec from the uapi header, padding included).
func structBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// dmBuffer lays out a command: the header, whose data_start is where payload begins (right
// after it: sizeof(struct dm_ioctl) is a multiple of 8) and data_size the whole buffer, then
// payload, which holds one target spec when there is one.
func dmBuffer(name string, flags uint32, payload []byte) ([]byte, error) {
	hdr := unix.DmIoctl{Version: dmVersion, Flags: flags, Data_start: unix.SizeofDmIoctl}
	if len(payload) > 0 {
		hdr.Target_count = 1
	}
	hdr.Data_size = uint32(unix.SizeofDmIoctl + len(payload))
	copy(hdr.Name[:], name)
	h := structBytes(&hdr)
	if len(h) != unix.SizeofDmIoctl {
		return nil, fmt.Errorf("struct dm_ioctl of %d bytes, want %d", len(h), unix.SizeofDmIoctl)
	}
	return append(append(make([]byte, 0, len(h)+len(payload)), h...), payload...), nil
}

// targetSpec is one struct dm_target_spec with its parameter string. The string must end in a
// NUL inside the buffer (populate_table() checks with memchr), and next, the offset of the
// following spec, is the spec and string rounded up to 8 bytes, as libdevmapper aligns them.
func targetSpec(typ string, sectors uint64, params string) []byte {
	size := unix.SizeofDmTargetSpec + len(params) + 1
	size = (size + 7) &^ 7
	spec := unix.DmTargetSpec{Length: sectors, Next: uint32(size)}
	copy(spec.Target_type[:], typ)
	b := make([]byte, size)
	copy(b[copy(b, structBytes(&spec)):], params)
	return b
}

// blockDevNumber returns "major:minor" of the block device at path.
func blockDevNumber(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return "", fmt.Errorf("%s is not a block device (mode %#o)", path, st.Mode)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)), nil
}

// blockNode returns the node of a mapped device, dir/dm-<minor> (alloc_dev() names the disk so,
// https://github.com/torvalds/linux/blob/master/drivers/md/dm.c). devtmpfs makes it while the
// table is loaded (add_disk() waits for the node); without devtmpfs there is none, and it is
// made here. An initramfs without udev has no /dev/mapper/<name> link either, so the dm-N node
// is what gets mounted. A node made here stays after the device is removed; a later device
// with the same minor is the same device number.
func blockNode(dir string, major, minor uint32) (string, error) {
	p := filepath.Join(dir, fmt.Sprintf("dm-%d", minor))
	want := unix.Mkdev(major, minor)
	check := func() (bool, error) {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != want {
			return false, fmt.Errorf("%s exists but is not block device %d:%d (mode %#o, device %d:%d)",
				p, major, minor, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		return true, nil
	}
	if ok, err := check(); ok || err != nil {
		return p, err
	}
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(want)); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("creating %s (block %d:%d): %w", p, major, minor, err)
	}
	if _, err := check(); err != nil {
		return "", err
	}
	return p, nil
}
