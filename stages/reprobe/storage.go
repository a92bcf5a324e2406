package reprobe

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// Where the storage in use is listed.
const (
	MountinfoPath = "/proc/self/mountinfo"
	SwapsPath     = "/proc/swaps"
)

// maxStorageDepth bounds the walk through slaves and loop backing files (dm on md on loop on
// dm ... is never this deep); it also stops a malformed tree from looping.
const maxStorageDepth = 16

// storageScan walks from each mounted block device down to the disks it lives on.
type storageScan struct {
	root   *hostfs.Root
	g      *Guards
	mounts []mountEntry
	seen   map[string]bool
}

// mountEntry is one line of mountinfo.
type mountEntry struct {
	point  string // the mount point, unescaped
	devnum string // major:minor as st_dev
	source string // the mount source, unescaped ("/dev/sda2", "overlay", "tmpfs")
}

// storage guards the chain below every mounted file system, swap partition and active
// device-mapper or md device.
func (g *Guards) storage(root *hostfs.Root) {
	s := &storageScan{root: root, g: g, seen: map[string]bool{}}
	mounts, err := readMountinfo(root)
	if err != nil {
		s.everyBlockDevice(fmt.Sprintf("may hold mounted storage, which cannot be told (%v)", err))
	}
	s.mounts = mounts
	for _, m := range mounts {
		node, err := s.node(m.devnum, m.source)
		switch {
		case err != nil:
			s.everyBlockDevice(fmt.Sprintf("may hold the storage of mounted %s, whose block device %s (%s) is not in sysfs (%v)",
				m.point, m.devnum, m.source, err))
		case node != "":
			s.walk(node, nil, "holds the storage of mounted "+m.point, 0)
		}
	}
	for _, dev := range readSwaps(root) {
		if node, err := s.node("", dev); err == nil && node != "" {
			s.walk(node, nil, "holds the storage of swap "+dev, 0)
		}
	}
	// A device-mapper or md device with slaves is in use even when nothing of it is mounted
	// yet (an unlocked LUKS volume, an activated LVM group): its disks must stay.
	entries, _ := root.FS.ReadDir("/sys/class/block")
	for _, e := range entries {
		node, err := root.Resolve(path.Join("/sys/class/block", e.Name()))
		if err != nil || s.seen[node] {
			continue
		}
		if slaves, _ := root.FS.ReadDir(path.Join(node, "slaves")); len(slaves) > 0 {
			s.walk(node, nil, "holds the storage of "+e.Name(), 0)
		}
	}
}

// readMountinfo parses /proc/self/mountinfo: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 -
// ext3 /dev/root rw,errors=continue"; the optional fields end at "-"
// (https://github.com/torvalds/linux/blob/v6.1/fs/proc_namespace.c show_mountinfo).
func readMountinfo(root *hostfs.Root) ([]mountEntry, error) {
	data, err := root.FS.ReadFile(MountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", root.Real(MountinfoPath), unwrapPathError(err))
	}
	var out []mountEntry
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+3 {
			continue
		}
		out = append(out, mountEntry{point: unescapeOctal(fields[4]), devnum: fields[2], source: unescapeOctal(fields[sep+2])})
	}
	return out, nil
}

// readSwaps returns the swap devices of /proc/swaps ("Filename Type Size Used Priority" after a
// header line; https://github.com/torvalds/linux/blob/v6.1/mm/swapfile.c swap_show escapes the
// name like mountinfo). A swap file lives on a mounted file system, which is guarded already.
func readSwaps(root *hostfs.Root) []string {
	data, err := root.FS.ReadFile(SwapsPath)
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) >= 2 && strings.HasPrefix(fields[0], "/dev/") {
			out = append(out, unescapeOctal(fields[0]))
		}
	}
	return out
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline and backslash in
// mountinfo and swaps (seq_escape with " \t\n\\").
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// node returns the /sys/devices directory of a mount's block device: by its device number
// through /sys/dev/block/M:m, else by its source through /sys/class/block/<name>. Btrfs
// reports an anonymous device number (major 0) for every mount, so its source is what names the
// disk. A mount with major 0 and no /dev source (tmpfs, proc, overlay, nfs) has no block device:
// "" and no error.
func (s *storageScan) node(devnum, source string) (string, error) {
	major, _, _ := strings.Cut(devnum, ":")
	var byNumber error
	if devnum != "" && major != "0" {
		node, err := s.root.Resolve("/sys/dev/block/" + devnum)
		if err == nil {
			return node, nil
		}
		byNumber = err
	}
	if !strings.HasPrefix(source, "/dev/") {
		return "", byNumber
	}
	// /dev/mapper/root, /dev/disk/by-label/... are links to the kernel's name.
	name := path.Base(source)
	if p, err := s.root.Resolve(source); err == nil {
		name = path.Base(p)
	}
	node, err := s.root.Resolve(path.Join("/sys/class/block", name))
	if err != nil {
		return "", err
	}
	return node, nil
}

// walk protects a block device and everything it is built on. chain is how it was reached.
func (s *storageScan) walk(node string, chain []string, what string, depth int) {
	if depth > maxStorageDepth || s.seen[node] {
		return
	}
	s.seen[node] = true
	chain = append(slices.Clip(chain), path.Base(node))
	// A partition is a directory of its disk and has a "partition" attribute
	// (https://github.com/torvalds/linux/blob/v6.1/block/partitions/core.c part_attrs): the
	// disk is what a controller holds, and a partitioned dm or md device has its slaves there.
	if _, err := s.root.FS.Stat(path.Join(node, "partition")); err == nil {
		s.walk(path.Dir(node), chain, what, depth+1)
		return
	}
	s.g.protect(node, what, chain)
	// dm and md list the devices they are built on in slaves/, links to their block
	// directories (https://github.com/torvalds/linux/blob/v6.1/block/holder.c
	// bd_link_disk_holder, called by dm for each table device and by md for each member).
	slaves, _ := s.root.FS.ReadDir(path.Join(node, "slaves"))
	for _, e := range slaves {
		if p, err := s.root.Resolve(path.Join(node, "slaves", e.Name())); err == nil {
			s.walk(p, chain, what, depth+1)
		}
	}
	// A loop device is built on a file
	// (https://github.com/torvalds/linux/blob/v6.1/drivers/block/loop.c
	// loop_attr_backing_file_show): the file system holding it is the mount whose point is the
	// longest prefix of its path.
	data, err := s.root.FS.ReadFile(path.Join(node, "loop", "backing_file"))
	if err != nil {
		return
	}
	file := strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
	if m, ok := s.mountOf(file); ok {
		if p, err := s.node(m.devnum, m.source); err == nil && p != "" {
			s.walk(p, chain, what, depth+1)
		}
	}
}

// mountOf returns the mount that holds the file at p (the last one mounted at the longest
// matching point, as the kernel's path lookup would find it).
func (s *storageScan) mountOf(p string) (mountEntry, bool) {
	best, found := mountEntry{}, false
	for _, m := range s.mounts {
		if m.point == p || m.point == "/" || strings.HasPrefix(p, m.point+"/") {
			if !found || len(m.point) >= len(best.point) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// everyBlockDevice protects every block device in sysfs, for when what is mounted cannot be
// told. what ends up in the reason of every device that holds one.
func (s *storageScan) everyBlockDevice(what string) {
	entries, _ := s.root.FS.ReadDir("/sys/class/block")
	for _, e := range entries {
		if node, err := s.root.Resolve(path.Join("/sys/class/block", e.Name())); err == nil {
			s.g.protect(node, what, []string{e.Name()})
		}
	}
}
