package erofs

import (
	"encoding/binary"
	"io/fs"
	"time"
)

// Inode data layouts (i_format bits 1-3).
const (
	layoutFlatPlain          = 0
	layoutCompressedFull     = 1
	layoutFlatInline         = 2
	layoutCompressedCompact  = 3
	layoutChunkBased         = 4
	layoutMax                = 5
	inodeFormatAll           = 0x1f // EROFS_I_ALL: version, datalayout, nlink-1/dot-omitted
	inodeCompactSize         = 32
	inodeExtendedSize        = 64
	xattrIbodyHeaderSize     = 12
	chunkFormatBlkBitsMask   = 0x001f
	chunkFormatIndexes       = 0x0020
	chunkFormat48Bit         = 0x0040
	chunkFormatAll           = chunkFormat48Bit<<1 - 1
	nullAddr32               = 0xffffffff // EROFS_NULL_ADDR as a 4-byte block map entry
	maxSymlinkSize           = 4096       // PATH_MAX, as the kernel's erofs_fill_symlink
	inodeSlotBits            = 5          // nid * 32 = offset in the metadata area
	posixTypeMask            = 0o170000
	posixDir, posixReg       = 0o040000, 0o100000
	posixLnk, posixChr       = 0o120000, 0o020000
	posixBlk, posixFifo      = 0o060000, 0o010000
	posixSock                = 0o140000
	posixSetuid, posixSetgid = 0o4000, 0o2000
	posixSticky              = 0o1000
)

// inode is an on-disk inode (erofs_inode_compact or erofs_inode_extended) located at pos.
type inode struct {
	nid        uint64
	pos        int64 // erofs_iloc
	isize      int64 // 32 or 64
	xattrIsize int64
	layout     uint8
	mode       uint16
	size       int64
	u          uint32 // i_u: start block, compressed block count, rdev or chunk format
	nlink      uint32
	uid, gid   uint32
	mtime      time.Time
}

// dataStart is where inline data, chunk indexes or the compression map header begin.
func (ino *inode) dataStart() int64 { return ino.pos + ino.isize + ino.xattrIsize }

func (ino *inode) isDir() bool     { return ino.mode&posixTypeMask == posixDir }
func (ino *inode) isReg() bool     { return ino.mode&posixTypeMask == posixReg }
func (ino *inode) isSymlink() bool { return ino.mode&posixTypeMask == posixLnk }

func (ino *inode) fileMode() fs.FileMode {
	m := fs.FileMode(ino.mode & 0o777)
	switch ino.mode & posixTypeMask {
	case posixDir:
		m |= fs.ModeDir
	case posixLnk:
		m |= fs.ModeSymlink
	case posixChr:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case posixBlk:
		m |= fs.ModeDevice
	case posixFifo:
		m |= fs.ModeNamedPipe
	case posixSock:
		m |= fs.ModeSocket
	}
	if ino.mode&posixSetuid != 0 {
		m |= fs.ModeSetuid
	}
	if ino.mode&posixSetgid != 0 {
		m |= fs.ModeSetgid
	}
	if ino.mode&posixSticky != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// readInode loads and checks the inode nid. Checks, in order: position inside the image,
// i_format bits, data layout, file type, size, xattr area, layout-specific fields.
func (f *FS) readInode(nid uint64) (*inode, error) {
	if nid > uint64(f.size)>>inodeSlotBits {
		return nil, corrupt("nid %d is past the image end (%d bytes)", nid, f.size)
	}
	pos := int64(f.sb.MetaBlkAddr)<<f.sb.BlkSzBits + int64(nid)<<inodeSlotBits
	var b [inodeExtendedSize]byte
	if err := f.readMeta(b[:inodeCompactSize], pos, "inode", nid); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	format := le.Uint16(b[0:])
	if format&^inodeFormatAll != 0 {
		return nil, corrupt("inode %d: i_format 0x%x has unknown bits", nid, format)
	}
	ino := &inode{nid: nid, pos: pos, layout: uint8(format>>1) & 7}
	if ino.layout >= layoutMax {
		return nil, corrupt("inode %d: data layout %d is unknown (max %d)", nid, ino.layout, layoutMax-1)
	}
	icount := le.Uint16(b[2:])
	ino.mode = le.Uint16(b[4:])
	ino.u = le.Uint32(b[16:])
	if format&1 == 0 {
		ino.isize = inodeCompactSize
		ino.size = int64(le.Uint32(b[8:]))
		ino.mtime = time.Unix(int64(f.sb.Epoch)+int64(le.Uint32(b[12:])), 0)
		ino.uid, ino.gid = uint32(le.Uint16(b[24:])), uint32(le.Uint16(b[26:]))
		ino.nlink = uint32(le.Uint16(b[6:]))
		if format&(1<<4) != 0 && !ino.isDir() {
			ino.nlink = 1 // EROFS_I_NLINK_1_BIT: i_nb holds blocks_hi/startblk_hi instead
		}
	} else {
		ino.isize = inodeExtendedSize
		if err := f.readMeta(b[inodeCompactSize:], pos+inodeCompactSize, "inode", nid); err != nil {
			return nil, err
		}
		size := le.Uint64(b[8:])
		if size > 1<<62 {
			return nil, corrupt("inode %d: i_size %d is implausible", nid, size)
		}
		ino.size = int64(size)
		ino.uid, ino.gid = le.Uint32(b[24:]), le.Uint32(b[28:])
		ino.mtime = time.Unix(int64(le.Uint64(b[32:])), int64(le.Uint32(b[40:])%1e9))
		ino.nlink = le.Uint32(b[44:])
	}
	switch ino.mode & posixTypeMask {
	case posixDir, posixReg, posixLnk, posixChr, posixBlk, posixFifo, posixSock:
	default:
		return nil, corrupt("inode %d: i_mode 0%o has no valid file type", nid, ino.mode)
	}
	if icount != 0 {
		ino.xattrIsize = xattrIbodyHeaderSize + 4*(int64(icount)-1)
	}
	if ino.dataStart() > f.size {
		return nil, corrupt("inode %d: inode and xattrs end at %d, past the image end %d", nid, ino.dataStart(), f.size)
	}
	if ino.isSymlink() && (ino.size == 0 || ino.size > maxSymlinkSize) {
		return nil, corrupt("inode %d: symlink target length %d, want 1..%d", nid, ino.size, maxSymlinkSize)
	}
	switch ino.layout {
	case layoutCompressedFull, layoutCompressedCompact:
		if f.sb.ComprAlgs == 0 {
			return nil, corrupt("inode %d: compressed layout %d but the superblock enables no compression", nid, ino.layout)
		}
	case layoutChunkBased:
		cf := ino.u & 0xffff
		if cf&^chunkFormatAll != 0 || cf&chunkFormat48Bit != 0 {
			return nil, unsupported("inode %d: chunk format 0x%x", nid, cf)
		}
		if uint(f.sb.BlkSzBits)+uint(cf&chunkFormatBlkBitsMask) > 62 {
			return nil, corrupt("inode %d: chunk bits %d too large", nid, cf&chunkFormatBlkBitsMask)
		}
	}
	return ino, nil
}
