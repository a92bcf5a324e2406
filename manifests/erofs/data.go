package erofs

import (
	"encoding/binary"
	"io"
	"sync"
)

// reader reads the data of one inode. Compressed extents are decompressed whole and the last
// one is kept, so sequential reads decompress each extent once.
type reader struct {
	fs  *FS
	ino *inode

	mu   sync.Mutex
	z    *zinfo  // compression map header, loaded on first use
	last *extent // last decompressed extent
}

func (f *FS) newReader(ino *inode) *reader { return &reader{fs: f, ino: ino} }

// ReadAt implements io.ReaderAt over the inode's data.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, corrupt("inode %d: negative read offset %d", r.ino.nid, off)
	}
	if off >= r.ino.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := r.ino.size - off; int64(want) > rest {
		p = p[:rest]
	}
	n := 0
	for n < len(p) {
		var m int
		var err error
		switch r.ino.layout {
		case layoutFlatPlain, layoutFlatInline:
			m, err = r.readFlat(p[n:], off+int64(n))
		case layoutChunkBased:
			m, err = r.readChunked(p[n:], off+int64(n))
		default:
			m, err = r.readCompressed(p[n:], off+int64(n))
		}
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, corrupt("inode %d: no progress reading at %d", r.ino.nid, off+int64(n))
		}
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// readFlat maps off like erofs_map_blocks_flatmode: blocks from i_u (startblk) for the
// first nblocks - tailendpacking blocks, the rest inline right after the inode and its xattrs,
// which must not cross a block boundary.
func (r *reader) readFlat(p []byte, off int64) (int, error) {
	ino, bs := r.ino, r.fs.sb.BlockSize()
	nblocks := (ino.size + bs - 1) / bs
	lastblk := nblocks
	if ino.layout == layoutFlatInline {
		lastblk--
	}
	if off < lastblk*bs {
		n := min(int64(len(p)), lastblk*bs-off)
		pa := int64(ino.u)*bs + off
		return int(n), r.fs.readFull(p[:n], pa, "data", ino.nid)
	}
	// tail-packed inline data
	base := ino.dataStart()
	tail := ino.size - lastblk*bs
	if base%bs+tail > bs {
		return 0, corrupt("inode %d: inline tail of %d bytes at %d crosses a block boundary (block size %d)", ino.nid, tail, base, bs)
	}
	n := min(int64(len(p)), ino.size-off)
	return int(n), r.fs.readMeta(p[:n], base+off-lastblk*bs, "inline data", ino.nid)
}

// readChunked maps off through the chunk table after the inode: 4-byte block addresses, or
// 8-byte erofs_inode_chunk_index entries with EROFS_CHUNK_FORMAT_INDEXES, each aligned to its
// size (erofs_map_blocks in fs/erofs/data.c). A null address is a hole.
func (r *reader) readChunked(p []byte, off int64) (int, error) {
	ino, bs := r.ino, r.fs.sb.BlockSize()
	cf := ino.u & 0xffff
	chunkBits := uint(r.fs.sb.BlkSzBits) + uint(cf&chunkFormatBlkBitsMask)
	chunk := off >> chunkBits
	unit := int64(4)
	if cf&chunkFormatIndexes != 0 {
		unit = 8
	}
	pos := alignUp(ino.dataStart(), unit) + chunk*unit
	var e [8]byte
	if err := r.fs.readMeta(e[:unit], pos, "chunk index", ino.nid); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	var blk uint64
	hole := false
	if unit == 4 {
		v := le.Uint32(e[:])
		hole, blk = v == nullAddr32, uint64(v)
	} else {
		// erofs_inode_chunk_index: le16 startblk_hi (48BIT only, else advise), le16 device_id
		// (masked by the device id mask, 0 without extra devices), le32 startblk_lo.
		v := le.Uint32(e[4:])
		hole, blk = v == nullAddr32, uint64(v)
	}
	inChunk := off & (1<<chunkBits - 1)
	n := min(int64(len(p)), 1<<chunkBits-inChunk)
	if hole {
		clear(p[:n])
		return int(n), nil
	}
	return int(n), r.fs.readFull(p[:n], int64(blk)*bs+inChunk, "chunk data", ino.nid)
}

func alignUp(v, a int64) int64 { return (v + a - 1) / a * a }
