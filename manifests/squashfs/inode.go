package squashfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"time"
)

// Inode types (squashfs_base_inode.inode_type): the basic ones, then the extended ones
// ("L" types, with xattrs, 64-bit sizes or directory indexes) at basic + 7.
const (
	typeDir     = 1
	typeReg     = 2
	typeSymlink = 3
	typeBlk     = 4
	typeChr     = 5
	typeFifo    = 6
	typeSock    = 7
	typeExt     = 7 // extended type = basic type + typeExt
	typeMax     = typeSock + typeExt

	baseInodeSize  = 16   // squashfs_base_inode
	maxSymlinkSize = 4096 // PATH_MAX (the kernel refuses targets longer than a page)
	maxFileSize    = 1 << 50
)

// fixedSize is the size of each inode type's fixed part after the base inode (squashfs_fs.h:
// squashfs_dir_inode, squashfs_reg_inode, ..., then the extended ones).
var fixedSize = [typeMax + 1]int{typeDir: 16, typeReg: 16, typeSymlink: 8, typeBlk: 8, typeChr: 8, typeFifo: 4, typeSock: 4,
	typeDir + typeExt: 24, typeReg + typeExt: 40, typeSymlink + typeExt: 8, typeBlk + typeExt: 12,
	typeChr + typeExt: 12, typeFifo + typeExt: 8, typeSock + typeExt: 8}

// inode is an inode of the inode table, located by its reference.
type inode struct {
	ref    uint64 // metadata block (relative to the inode table) << 16 | offset
	typ    uint16 // on-disk type, 1..14
	mode   uint16 // permission bits (squashfs keeps the type in typ only)
	number uint32
	mtime  uint32
	nlink  uint32
	size   int64 // bytes of a file, listing bytes + 3 of a directory, target length of a symlink

	dirBlock  uint32 // directory: listing's metadata block, relative to the directory table
	dirOffset uint16 //   and offset in it

	start   int64      // regular file: disk position of the first data block
	frag    uint32     //   fragment index or invalidFrag
	fragOff uint32     //   offset of the tail in the fragment block
	nblocks int64      //   entries of the block list
	list    metaReader //   where the block list starts (right after the inode)

	target string // symlink
	rdev   uint32 // devices
}

// kind is the basic type of the inode (an extended type's basic counterpart).
func (ino *inode) kind() uint16 {
	if ino.typ > typeExt {
		return ino.typ - typeExt
	}
	return ino.typ
}

func (ino *inode) isDir() bool     { return ino.kind() == typeDir }
func (ino *inode) isReg() bool     { return ino.kind() == typeReg }
func (ino *inode) isSymlink() bool { return ino.kind() == typeSymlink }

// typeMode is the fs.FileMode type bits of a basic inode type (also directory entry types).
func typeMode(kind uint16) fs.FileMode {
	switch kind {
	case typeDir:
		return fs.ModeDir
	case typeSymlink:
		return fs.ModeSymlink
	case typeBlk:
		return fs.ModeDevice
	case typeChr:
		return fs.ModeDevice | fs.ModeCharDevice
	case typeFifo:
		return fs.ModeNamedPipe
	case typeSock:
		return fs.ModeSocket
	}
	return 0
}

func (ino *inode) fileMode() fs.FileMode {
	m := typeMode(ino.kind()) | fs.FileMode(ino.mode&0o777)
	if ino.mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if ino.mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if ino.mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func (ino *inode) modTime() time.Time { return time.Unix(int64(ino.mtime), 0) }

// readInode reads the inode at ref from the inode table (squashfs_read_inode in
// fs/squashfs/inode.c). Every inode starts with squashfs_base_inode; the type decides what
// follows. Checks: the reference's offset, the type, the sizes (symlink target 1..4096
// bytes, a file's blocks and fragment consistent with the superblock), directory offsets.
func (f *FS) readInode(ref uint64) (*inode, error) {
	blk, off := int64(ref>>16), int(ref&0xffff)
	if off >= metadataSize || blk > f.size {
		return nil, corrupt("inode reference 0x%x points outside the inode table", ref)
	}
	m := metaReader{f: f, blk: int64(f.sb.InodeTableStart) + blk, off: off, limit: int64(f.sb.DirectoryTableStart)}
	wrap := func(err error) error { return fmt.Errorf("inode 0x%x: %w", ref, err) }
	var b [64]byte
	if err := m.read(b[:baseInodeSize]); err != nil {
		return nil, wrap(err)
	}
	le := binary.LittleEndian
	ino := &inode{ref: ref, typ: le.Uint16(b[0:]), mode: le.Uint16(b[2:]) & 0o7777,
		mtime: le.Uint32(b[8:]), number: le.Uint32(b[12:]), nlink: 1}
	if ino.typ == 0 || ino.typ > typeMax {
		return nil, corrupt("inode 0x%x: type %d is unknown", ref, ino.typ)
	}
	p := b[baseInodeSize : baseInodeSize+fixedSize[ino.typ]]
	if err := m.read(p); err != nil {
		return nil, wrap(err)
	}
	switch ino.typ {
	case typeDir:
		ino.dirBlock, ino.nlink = le.Uint32(p[0:]), le.Uint32(p[4:])
		ino.size, ino.dirOffset = int64(le.Uint16(p[8:])), le.Uint16(p[10:])
	case typeDir + typeExt: // the directory index that follows is only a lookup accelerator
		ino.nlink, ino.size = le.Uint32(p[0:]), int64(le.Uint32(p[4:]))
		ino.dirBlock, ino.dirOffset = le.Uint32(p[8:]), le.Uint16(p[18:])
	case typeReg:
		ino.start, ino.frag = int64(le.Uint32(p[0:])), le.Uint32(p[4:])
		ino.fragOff, ino.size = le.Uint32(p[8:]), int64(le.Uint32(p[12:]))
	case typeReg + typeExt:
		start, size := le.Uint64(p[0:]), le.Uint64(p[8:])
		if start > uint64(f.size) || size > maxFileSize {
			return nil, corrupt("inode 0x%x: start block %d or file size %d is implausible", ref, start, size)
		}
		ino.start, ino.size = int64(start), int64(size)
		ino.nlink, ino.frag, ino.fragOff = le.Uint32(p[24:]), le.Uint32(p[28:]), le.Uint32(p[32:])
	case typeSymlink, typeSymlink + typeExt:
		ino.nlink, ino.size = le.Uint32(p[0:]), int64(le.Uint32(p[4:]))
		if ino.size == 0 || ino.size > maxSymlinkSize {
			return nil, corrupt("inode 0x%x: symlink target length %d, want 1..%d", ref, ino.size, maxSymlinkSize)
		}
		t, err := m.bytes(int(ino.size))
		if err != nil {
			return nil, wrap(err)
		}
		ino.target = string(t)
	case typeBlk, typeChr, typeBlk + typeExt, typeChr + typeExt:
		ino.nlink, ino.rdev = le.Uint32(p[0:]), le.Uint32(p[4:])
	default: // fifos and sockets
		ino.nlink = le.Uint32(p[0:])
	}
	switch {
	case ino.isDir() && ino.dirOffset >= metadataSize:
		return nil, corrupt("inode 0x%x: directory offset %d is past a metadata block", ref, ino.dirOffset)
	case ino.isReg():
		bs := int64(f.sb.BlockSize)
		if ino.frag == invalidFrag {
			ino.nblocks = (ino.size + bs - 1) / bs
		} else {
			ino.nblocks = ino.size / bs
			if ino.frag >= f.sb.Fragments {
				return nil, corrupt("inode 0x%x: fragment %d, the image has %d", ref, ino.frag, f.sb.Fragments)
			}
			if ino.fragOff >= f.sb.BlockSize {
				return nil, corrupt("inode 0x%x: fragment offset %d is past a block (%d)", ref, ino.fragOff, f.sb.BlockSize)
			}
		}
		ino.list = m
	}
	return ino, nil
}
