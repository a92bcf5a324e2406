package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

const (
	maxBlocks       = 1 << 20 // block list entries read for one file (4 MiB of list)
	dataCacheBlocks = 8       // decoded data and fragment blocks kept (SQUASHFS_CACHED_BLKS)
	fragEntrySize   = 16      // squashfs_fragment_entry: le64 start_block, le32 size, le32 unused
	fragsPerBlock   = metadataSize / fragEntrySize
	fragIndexCache  = 4096 // fragment index entries kept
)

// zeros backs sparse blocks.
var zeros [1 << maxBlockLog]byte

// reader reads the data of one regular file: nblocks blocks from the inode's start block,
// each the size its block list entry gives (bit 24: stored uncompressed; 0: a sparse block of
// zeros), then, with a fragment, the tail at fragOff of that fragment block
// (squashfs_readpage in fs/squashfs/file.c).
type reader struct {
	fs  *FS
	ino *inode

	mu    sync.Mutex
	sizes []uint32 // the block list, loaded on first read
	offs  []int64  // disk position of each block
}

func (f *FS) newReader(ino *inode) *reader { return &reader{fs: f, ino: ino} }

// loadBlocks reads the block list that follows the inode and places the blocks.
func (r *reader) loadBlocks() error {
	ino, sb := r.ino, r.fs.sb
	if r.offs != nil || ino.nblocks == 0 {
		return nil
	}
	if ino.nblocks > maxBlocks {
		return unsupported("inode 0x%x: %d data blocks, more than the %d this reader reads", ino.ref, ino.nblocks, maxBlocks)
	}
	m := ino.list
	list, err := m.bytes(4 * int(ino.nblocks))
	if err != nil {
		return fmt.Errorf("inode 0x%x: block list: %w", ino.ref, err)
	}
	sizes, offs := make([]uint32, ino.nblocks), make([]int64, ino.nblocks)
	pos := ino.start
	for i := range sizes {
		s := binary.LittleEndian.Uint32(list[4*i:])
		n := int64(s &^ dataUncompBit)
		if s>>25 != 0 || n > int64(sb.BlockSize) {
			return corrupt("inode 0x%x: block %d has size 0x%x (block size %d)", ino.ref, i, s, sb.BlockSize)
		}
		sizes[i], offs[i] = s, pos
		if pos += n; pos > int64(sb.BytesUsed) {
			return corrupt("inode 0x%x: block %d ends at %d, past the image end %d", ino.ref, i, pos, sb.BytesUsed)
		}
	}
	r.sizes, r.offs = sizes, offs
	return nil
}

// ReadAt implements io.ReaderAt over the file's data.
func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	ino, bs := r.ino, int64(r.fs.sb.BlockSize)
	if off < 0 {
		return 0, fmt.Errorf("squashfs: inode 0x%x: negative read offset %d", ino.ref, off)
	}
	if off >= ino.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := ino.size - off; int64(want) > rest {
		p = p[:rest]
	}
	r.mu.Lock()
	err := r.loadBlocks()
	r.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := pos / bs
		var blk []byte
		if i < ino.nblocks {
			blk, err = r.block(i)
		} else {
			blk, err = r.tail()
		}
		if err != nil {
			return n, err
		}
		in := pos - i*bs
		if in >= int64(len(blk)) {
			return n, corrupt("inode 0x%x: block %d holds %d bytes, offset %d is past them", ino.ref, i, len(blk), in)
		}
		n += copy(p[n:], blk[in:])
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// block returns the decoded block i, which holds min(block size, rest of the file) bytes.
func (r *reader) block(i int64) ([]byte, error) {
	bs := int64(r.fs.sb.BlockSize)
	want := min(bs, r.ino.size-i*bs)
	s := r.sizes[i]
	if s&^dataUncompBit == 0 {
		return zeros[:want], nil
	}
	data, err := r.fs.readBlock(r.offs[i], s)
	if err != nil {
		return nil, fmt.Errorf("inode 0x%x: block %d: %w", r.ino.ref, i, err)
	}
	if int64(len(data)) != want {
		return nil, corrupt("inode 0x%x: block %d decodes to %d bytes, want %d", r.ino.ref, i, len(data), want)
	}
	return data, nil
}

// tail returns the file's tail from its fragment block.
func (r *reader) tail() ([]byte, error) {
	ino := r.ino
	n := ino.size - ino.nblocks*int64(r.fs.sb.BlockSize)
	if ino.frag == invalidFrag {
		return nil, corrupt("inode 0x%x: %d bytes past its blocks and no fragment", ino.ref, n)
	}
	start, size, err := r.fs.fragment(ino.frag)
	if err != nil {
		return nil, fmt.Errorf("inode 0x%x: %w", ino.ref, err)
	}
	data, err := r.fs.readBlock(start, size)
	if err != nil {
		return nil, fmt.Errorf("inode 0x%x: fragment %d: %w", ino.ref, ino.frag, err)
	}
	end := int64(ino.fragOff) + n
	if end > int64(len(data)) {
		return nil, corrupt("inode 0x%x: tail [%d, %d) of fragment %d passes its %d bytes", ino.ref, ino.fragOff, end, ino.frag, len(data))
	}
	return data[ino.fragOff:end], nil
}

// fragment returns the position and size field of fragment idx: the fragment table is an
// index of 8-byte pointers at fragment_table_start to metadata blocks of 512 entries.
func (f *FS) fragment(idx uint32) (int64, uint32, error) {
	sb := f.sb
	slot := idx / fragsPerBlock
	f.mu.Lock()
	blk, ok := f.fragIndex[slot]
	f.mu.Unlock()
	if !ok {
		var b [8]byte
		at := int64(sb.FragmentTableStart) + 8*int64(slot)
		if at+8 > int64(sb.BytesUsed) {
			return 0, 0, corrupt("fragment %d: index entry at %d is past the image end %d", idx, at, sb.BytesUsed)
		}
		if err := f.readFull(b[:], at, "fragment index"); err != nil {
			return 0, 0, err
		}
		blk = int64(binary.LittleEndian.Uint64(b[:]))
		f.mu.Lock()
		if len(f.fragIndex) >= fragIndexCache {
			clear(f.fragIndex)
		}
		f.fragIndex[slot] = blk
		f.mu.Unlock()
	}
	m := metaReader{f: f, blk: blk, off: int(idx%fragsPerBlock) * fragEntrySize, limit: int64(sb.BytesUsed)}
	var e [fragEntrySize]byte
	if err := m.read(e[:]); err != nil {
		return 0, 0, fmt.Errorf("fragment %d: %w", idx, err)
	}
	start, size := binary.LittleEndian.Uint64(e[0:]), binary.LittleEndian.Uint32(e[8:])
	if size>>25 != 0 || size&^dataUncompBit == 0 || size&^dataUncompBit > sb.BlockSize || start >= sb.BytesUsed {
		return 0, 0, corrupt("fragment %d: start %d, size 0x%x (block size %d, image end %d)", idx, start, size, sb.BlockSize, sb.BytesUsed)
	}
	return int64(start), size, nil
}

// cachedBlock is a decoded data or fragment block.
type cachedBlock struct {
	pos  int64
	size uint32
	data []byte
}

// readBlock returns the decoded data or fragment block at pos with the size field size
// (bit 24: stored uncompressed). The last blocks read are cached, so reading a file in small
// pieces, or many small files sharing a fragment block, decodes each block once.
func (f *FS) readBlock(pos int64, size uint32) ([]byte, error) {
	f.mu.Lock()
	for i, c := range f.blocks {
		if c.pos == pos && c.size == size {
			copy(f.blocks[1:i+1], f.blocks[:i])
			f.blocks[0] = c
			f.mu.Unlock()
			return c.data, nil
		}
	}
	f.mu.Unlock()
	n := int64(size &^ dataUncompBit)
	if pos < 0 || pos+n > int64(f.sb.BytesUsed) {
		return nil, corrupt("block [%d, %d) passes the image end %d", pos, pos+n, f.sb.BytesUsed)
	}
	data := make([]byte, n)
	if err := f.readFull(data, pos, "data block"); err != nil {
		return nil, err
	}
	if size&dataUncompBit == 0 {
		var err error
		if data, err = f.dec.decompress(data, int(f.sb.BlockSize)); err != nil {
			return nil, fmt.Errorf("block at %d (%d bytes): %w", pos, n, err)
		}
	}
	f.mu.Lock()
	if len(f.blocks) < dataCacheBlocks {
		f.blocks = append(f.blocks, cachedBlock{})
	}
	copy(f.blocks[1:], f.blocks)
	f.blocks[0] = cachedBlock{pos: pos, size: size, data: data}
	f.mu.Unlock()
	return data, nil
}
