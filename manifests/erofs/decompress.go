package erofs

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// readCompressed serves p from the extent holding off, decompressing it if it is not the last
// one used. Fragment data is read straight from the packed inode.
func (r *reader) readCompressed(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.loadZInfo(); err != nil {
		return 0, err
	}
	e := r.last
	if e == nil || off < e.la || off >= e.la+e.llen {
		var err error
		if e, err = r.mapExtent(off, false); err != nil {
			return 0, err
		}
		if e.fragment {
			return r.readFragment(p[:min(int64(len(p)), e.la+e.llen-off)], int64(r.z.fragOff)+off-e.la)
		}
		if e.data, err = r.decode(e); err != nil {
			return 0, err
		}
		r.last = e
	}
	return copy(p, e.data[off-e.la:]), nil
}

// readFragment reads p at off of the packed inode (EROFS_FEATURE_INCOMPAT_FRAGMENTS).
func (r *reader) readFragment(p []byte, off int64) (int, error) {
	if r.ino.nid == r.fs.sb.PackedNID {
		return 0, corrupt("packed inode %d refers to a fragment of itself", r.ino.nid)
	}
	packed, err := r.fs.packedReader()
	if err != nil {
		return 0, err
	}
	n, err := packed.ReadAt(p, off)
	if err != nil {
		if err == io.EOF {
			err = corrupt("fragment of %d bytes at %d passes the packed inode's end (%d bytes)", len(p), off, packed.ino.size)
		}
		return n, fmt.Errorf("inode %d: reading fragment at %d of packed inode %d: %w", r.ino.nid, off, r.fs.sb.PackedNID, err)
	}
	return n, nil
}

// decode returns the e.llen decoded bytes of the (non-fragment) extent e.
func (r *reader) decode(e *extent) ([]byte, error) {
	ino, f := r.ino, r.fs
	raw := make([]byte, e.plen)
	read := f.readFull
	if e.inline {
		read = f.readMeta
	}
	if err := read(raw, e.pa, "pcluster", ino.nid); err != nil {
		return nil, err
	}
	out, err := decompress(e.alg, raw, int(e.llen), e.partial, f.sb, e.la)
	if err != nil {
		return nil, fmt.Errorf("inode %d: extent [%d, %d) (%s, %d bytes at %d): %w", ino.nid, e.la, e.la+e.llen, AlgName(e.alg), e.plen, e.pa, err)
	}
	return out, nil
}

// packedReader returns the reader of the packed inode that holds fragments
// (EROFS_FEATURE_INCOMPAT_FRAGMENTS). It is shared by every file, so reading many small
// fragments decodes each extent of the packed inode once (the reader keeps its last extent).
// f.mu is not held while the inode is read: readInode takes it (readMeta's block cache), and
// holding it here deadlocked the first read of any fragment.
func (f *FS) packedReader() (*reader, error) {
	f.mu.Lock()
	packed := f.packed
	f.mu.Unlock()
	if packed != nil {
		return packed, nil
	}
	if f.sb.FeatureIncompat&incompatFragments == 0 || f.sb.PackedNID == 0 {
		return nil, corrupt("a file refers to a fragment but the superblock has no packed inode")
	}
	ino, err := f.readInode(f.sb.PackedNID)
	if err != nil {
		return nil, fmt.Errorf("packed inode: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.packed == nil {
		f.packed = f.newReader(ino)
	}
	return f.packed, nil
}

// decompress decodes one pcluster into n bytes. With partial the pcluster may decode to more
// than n bytes (a deduplicated extent refers to a prefix of it). la is the extent's logical
// start (the rotation of interlaced plain pclusters). Compressed pclusters are padded with
// leading zeros up to their block end ("0padding", EROFS_FEATURE_INCOMPAT_LZ4_0PADDING, always
// on for algorithms other than lz4): the stream starts at the first non-zero byte.
// See z_erofs_decompress in erofs-utils lib/decompress.c.
func decompress(alg int, raw []byte, n int, partial bool, sb *Superblock, la int64) ([]byte, error) {
	switch alg {
	case algShifted:
		if n > len(raw) {
			return nil, corrupt("plain pcluster holds %d bytes, extent needs %d", len(raw), n)
		}
		return raw[:n], nil
	case algInterlaced:
		bs := int(sb.BlockSize())
		if n > len(raw) || len(raw) > bs {
			return nil, corrupt("interlaced pcluster holds %d bytes (block %d), extent needs %d", len(raw), bs, n)
		}
		skip := int(la % int64(bs))
		right := min(bs-skip, n)
		if skip+right > len(raw) {
			return nil, corrupt("interlaced pcluster of %d bytes rotated by %d", len(raw), skip)
		}
		out := make([]byte, 0, n)
		out = append(out, raw[skip:skip+right]...)
		return append(out, raw[:n-right]...), nil
	}
	src := raw
	zeroPadded := alg != AlgLZ4 || sb.FeatureIncompat&incompatLZ40Padding != 0
	if zeroPadded {
		margin := 0
		for margin < len(src) && src[margin] == 0 {
			margin++
		}
		if margin == len(src) {
			return nil, corrupt("compressed pcluster of %d bytes is all zeros", len(raw))
		}
		src = src[margin:]
	}
	switch alg {
	case AlgLZ4:
		return decodeLZ4(src, n, partial, zeroPadded)
	case AlgLZMA:
		return decodeMicroLZMA(src, n, partial)
	case AlgDeflate:
		return readN(flate.NewReader(bytes.NewReader(src)), n)
	case AlgZstd:
		d, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return readN(d, n)
	}
	return nil, unsupported("compression algorithm %d", alg)
}

// decodeLZ4 decodes an LZ4 block into n bytes. A full extent of a 0padded pcluster is
// exactly one block that decodes to n bytes: github.com/pierrec/lz4 does it. Two cases need
// LZ4_decompress_safe_partial (stop once n bytes are out), which that library does not offer:
// a partial (deduplicated) extent, and images without 0padding (mkfs.erofs -Elegacy-compress),
// whose stream is followed by garbage up to the pcluster end; lz4Partial handles those.
func decodeLZ4(src []byte, n int, partial, zeroPadded bool) ([]byte, error) {
	out := make([]byte, n)
	if partial || !zeroPadded {
		got, err := lz4Partial(src, out)
		if err != nil {
			return nil, corrupt("lz4 pcluster (%d bytes) into %d bytes: %v", len(src), n, err)
		}
		if got != n {
			return nil, corrupt("lz4 pcluster decoded to %d bytes, want %d", got, n)
		}
		return out, nil
	}
	got, err := lz4.UncompressBlock(src, out)
	if err != nil {
		return nil, corrupt("lz4 pcluster (%d bytes) into %d bytes: %v", len(src), n, err)
	}
	if got != n {
		return nil, corrupt("lz4 pcluster decoded to %d bytes, want %d", got, n)
	}
	return out, nil
}

// lz4Partial decodes the LZ4 block format (https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md)
// into dst and stops as soon as dst is full, like LZ4_decompress_safe_partial.
func lz4Partial(src, dst []byte) (int, error) {
	s, d := 0, 0
	length := func(l int) (int, error) {
		if l != 15 {
			return l, nil
		}
		for {
			if s >= len(src) {
				return 0, errors.New("truncated length")
			}
			b := src[s]
			s++
			l += int(b)
			if l > 1<<30 {
				return 0, errors.New("length overflow")
			}
			if b != 255 {
				return l, nil
			}
		}
	}
	for d < len(dst) {
		if s >= len(src) {
			return d, errors.New("input ends before the output is full")
		}
		token := src[s]
		s++
		lit, err := length(int(token >> 4))
		if err != nil {
			return d, err
		}
		if lit > len(src)-s {
			lit = len(src) - s
		}
		c := copy(dst[d:], src[s:s+lit])
		d += c
		s += lit
		if d == len(dst) {
			return d, nil
		}
		if s+2 > len(src) {
			return d, errors.New("input ends inside a match offset")
		}
		off := int(src[s]) | int(src[s+1])<<8
		s += 2
		if off == 0 || off > d {
			return d, fmt.Errorf("match offset %d at output %d", off, d)
		}
		ml, err := length(int(token & 15))
		if err != nil {
			return d, err
		}
		ml += 4
		for i := 0; i < ml && d < len(dst); i++ {
			dst[d] = dst[d-off]
			d++
		}
	}
	return d, nil
}

func readN(r io.Reader, n int) ([]byte, error) {
	out := make([]byte, n)
	if _, err := io.ReadFull(r, out); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, corrupt("stream ended before %d bytes", n)
		}
		return nil, corrupt("%v", err)
	}
	return out, nil
}
