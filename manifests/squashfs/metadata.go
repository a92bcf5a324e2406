package squashfs

import (
	"encoding/binary"
	"fmt"
)

// metaCacheBlocks bounds the decoded metadata block cache (8 MiB).
const metaCacheBlocks = 1024

// metaBlock is a decoded metadata block and the disk position of the block after it.
type metaBlock struct {
	data []byte
	next int64
}

// readMetaBlock returns the decoded metadata block whose 2-byte header is at pos, and the
// position of the next block. The header's low 15 bits are the stored length (1..8192), its
// high bit says the block is stored uncompressed; it decodes to 1..8192 bytes. The block must
// end at or before limit, the end of its table. Blocks are cached.
func (f *FS) readMetaBlock(pos, limit int64) ([]byte, int64, error) {
	f.mu.Lock()
	mb, ok := f.meta[pos]
	f.mu.Unlock()
	if ok {
		if mb.next > limit {
			return nil, 0, corrupt("metadata block at %d ends at %d, past its table end %d", pos, mb.next, limit)
		}
		return mb.data, mb.next, nil
	}
	if pos < 0 || pos+2 > limit {
		return nil, 0, corrupt("metadata block at %d is outside its table (which ends at %d)", pos, limit)
	}
	buf := make([]byte, min(2+metadataSize, limit-pos))
	if err := f.readFull(buf, pos, "metadata block"); err != nil {
		return nil, 0, err
	}
	hdr := binary.LittleEndian.Uint16(buf)
	n := int64(hdr &^ metaUncompBit)
	if n == 0 || 2+n > int64(len(buf)) {
		return nil, 0, corrupt("metadata block at %d: length %d is outside 1..%d or passes its table end %d", pos, n, metadataSize, limit)
	}
	data := buf[2 : 2+n]
	if hdr&metaUncompBit == 0 {
		var err error
		if data, err = f.dec.decompress(data, metadataSize); err != nil {
			return nil, 0, fmt.Errorf("metadata block at %d (%d bytes): %w", pos, n, err)
		}
		if len(data) == 0 {
			return nil, 0, corrupt("metadata block at %d decodes to nothing", pos)
		}
	}
	mb = metaBlock{data: data, next: pos + 2 + n}
	f.mu.Lock()
	if len(f.meta) >= metaCacheBlocks {
		clear(f.meta)
	}
	f.meta[pos] = mb
	f.mu.Unlock()
	return mb.data, mb.next, nil
}

// metaReader reads a stream of metadata (an inode, a directory listing, a table entry) that
// starts at offset off of the block at blk and may continue into the following blocks, as
// squashfs_read_metadata does.
type metaReader struct {
	f     *FS
	blk   int64 // disk position of the current block
	off   int   // offset in its decoded data
	limit int64 // end of the table: no block may pass it
}

// read fills b from the stream.
func (m *metaReader) read(b []byte) error {
	for len(b) > 0 {
		data, next, err := m.f.readMetaBlock(m.blk, m.limit)
		if err != nil {
			return err
		}
		if m.off >= len(data) {
			return corrupt("offset %d is past the %d bytes of the metadata block at %d", m.off, len(data), m.blk)
		}
		n := copy(b, data[m.off:])
		b = b[n:]
		m.off += n
		if m.off == len(data) {
			m.blk, m.off = next, 0
		}
	}
	return nil
}

// bytes reads the next n bytes of the stream. It grows its result as the stream delivers, so
// a corrupt length costs no more memory than the metadata that is really there.
func (m *metaReader) bytes(n int) ([]byte, error) {
	b := make([]byte, 0, min(n, metadataSize))
	for len(b) < n {
		k := min(n-len(b), metadataSize)
		b = append(b, make([]byte, k)...)
		if err := m.read(b[len(b)-k:]); err != nil {
			return nil, err
		}
	}
	return b, nil
}
