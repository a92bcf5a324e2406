// Package sysops is the one small interface through which apply changes the running system:
// mounts, loop devices, device-mapper targets and writes to sysfs attributes. The real
// implementation makes the syscalls itself (no external programs at boot); tests substitute a
// Recorder. Paths are real paths: callers resolve them under --root first.
package sysops

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kairos-io/kairos-firmware/manifests/verity"
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
	// VerityCreate sets up the read-only device-mapper device name with one dm-verity target
	// over t's block devices and returns its node (/dev/dm-N). Every block read through it is
	// checked against t.RootHash by the kernel. On failure nothing is left behind.
	VerityCreate(name string, t VerityTarget) (dev string, err error)
	// VerityRemove removes the device-mapper device name. One still open (a lazily unmounted
	// filesystem) is removed by the kernel when its last user closes it. A device that does
	// not exist gives an error wrapping unix.ENXIO.
	VerityRemove(name string) error
	// WriteAttr writes value to a sysfs or procfs attribute in one write(2), as `echo -n` does.
	WriteAttr(path, value string) error
	// Now and Sleep let tests run timeouts without waiting.
	Now() time.Time
	Sleep(d time.Duration)
}

// VerityTarget is one dm-verity target
// (https://github.com/torvalds/linux/blob/master/Documentation/admin-guide/device-mapper/verity.rst).
type VerityTarget struct {
	// DataDev is the block device whose first Params.DataBlocks blocks the tree covers: a loop
	// device over a DDI's data partition (dm-verity has no data offset).
	DataDev string
	// HashDev holds the hash tree at Params.HashOffset: a loop device over the hash partition,
	// whose veritysetup superblock comes first.
	HashDev string
	// Params are the tree's parameters, from the hash partition's superblock
	// (verity.ReadSuperblock).
	Params verity.Params
	// RootHash is the root hash the tree must match: the one verified when the image was
	// admitted.
	RootHash []byte
}

// Sectors is the target's length in 512-byte sectors: the data blocks the tree covers.
func (v VerityTarget) Sectors() uint64 {
	return v.Params.DataBlocks * uint64(v.Params.DataBlockSize) / 512
}

// Table is the target's table line with the devices as given, for logs and the journal.
func (v VerityTarget) Table() (string, error) { return v.table(v.DataDev, v.HashDev) }

// table renders the ten mandatory arguments of the verity target with data and hash for the
// devices: <version> <data_dev> <hash_dev> <data_block_size> <hash_block_size>
// <num_data_blocks> <hash_start_block> <algorithm> <digest> <salt> (verity.rst). No optional
// argument is given, so a block that does not match fails its read with EIO (the default:
// neither ignore_corruption nor restart_on_corruption).
func (v VerityTarget) table(data, hash string) (string, error) {
	p := v.Params
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("verity table for %s over %s: "+format, append([]any{data, hash}, args...)...)
	}
	switch {
	case p.HashType != 1:
		// Version 0 is the Chrome OS format, which systemd-repart and veritysetup do not write.
		return bad("hash type %d, want 1", p.HashType)
	case !validBlockSize(p.DataBlockSize) || !validBlockSize(p.HashBlockSize):
		return bad("block sizes %d (data) and %d (hash): each must be a power of two of at least 512", p.DataBlockSize, p.HashBlockSize)
	case p.DataBlocks == 0:
		return bad("the tree covers no data block")
	case p.HashOffset < 0 || p.HashOffset%int64(p.HashBlockSize) != 0:
		// <hash_start_block> counts hash blocks: libcryptsetup's VERITY_hash_offset_block()
		// (https://gitlab.com/cryptsetup/cryptsetup/-/blob/main/lib/verity/verity.c) rounds the
		// 512-byte superblock up to a whole hash block, as ReadSuperblock does.
		return bad("hash offset %d is not a multiple of the hash block size %d", p.HashOffset, p.HashBlockSize)
	case len(v.RootHash) == 0:
		return bad("no root hash")
	case p.Algorithm == "" || strings.ContainsFunc(p.Algorithm, func(r rune) bool { return r <= ' ' || r > '~' }):
		// The table is split on spaces: an algorithm name with one would add arguments.
		return bad("hash algorithm %q", p.Algorithm)
	}
	// "-" stands for an empty salt (verity_ctr(),
	// https://github.com/torvalds/linux/blob/master/drivers/md/dm-verity-target.c).
	salt := "-"
	if len(p.Salt) > 0 {
		salt = hex.EncodeToString(p.Salt)
	}
	return fmt.Sprintf("%d %s %s %d %d %d %d %s %s %s", p.HashType, data, hash, p.DataBlockSize, p.HashBlockSize,
		p.DataBlocks, p.HashOffset/int64(p.HashBlockSize), strings.ToLower(p.Algorithm), hex.EncodeToString(v.RootHash), salt), nil
}

func validBlockSize(n uint32) bool { return n >= 512 && n&(n-1) == 0 }
