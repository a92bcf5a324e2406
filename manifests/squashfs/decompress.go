package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"io"
	"sync"

	lzo "github.com/anchore/go-lzo"
	"github.com/klauspost/compress/zstd"
	"github.com/mikelolasagasti/xz"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// decoder decompresses the blocks of one image: each compressed metadata or data block is one
// self-contained stream of the superblock's compressor (squashfs-tools' *_wrapper.c).
type decoder struct {
	id      uint16
	dictMax uint32 // xz: the largest dictionary a stream may ask for
	pool    sync.Pool
}

func newDecoder(sb *Superblock) *decoder {
	d := &decoder{id: sb.Compression}
	// as squashfs_xz_comp_opts: the options' dictionary size, else the block size (at least
	// a metadata block)
	d.dictMax = max(sb.BlockSize, metadataSize)
	if sb.XZDictSize != 0 {
		d.dictMax = sb.XZDictSize
	}
	return d
}

// decompress decodes one block into at most limit bytes. The decoders are other modules'
// code fed with untrusted bytes: a panic in one is reported as corruption.
func (d *decoder) decompress(src []byte, limit int) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, corrupt("%s decoder failed on a %d-byte block: %v", CompressorName(d.id), len(src), r)
		}
	}()
	switch d.id {
	case Gzip:
		out, err = d.zlib(src, limit)
	case LZMA:
		out, err = decodeLZMA(src, limit)
	case LZO:
		out = make([]byte, limit)
		var n int
		n, err = lzo.Decompress(src, out)
		out = out[:n]
	case XZ:
		out, err = d.xz(src, limit)
	case LZ4:
		// raw LZ4 blocks (lz4_wrapper.c: LZ4_compress_default), not LZ4 frames
		out = make([]byte, limit)
		var n int
		n, err = lz4.UncompressBlock(src, out)
		out = out[:n]
	case Zstd:
		var dec *zstd.Decoder
		if dec, err = zstdDecoder(); err == nil {
			out, err = dec.DecodeAll(src, make([]byte, 0, limit))
			if err == nil && len(out) > limit {
				err = errors.New("block decodes past its size")
			}
		}
	default:
		return nil, unsupported("compressor id %d", d.id)
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, corrupt("%s block of %d bytes (at most %d decoded): %v", CompressorName(d.id), len(src), limit, err)
	}
	return out, nil
}

// zlib decodes a zlib stream (squashfs "gzip"), reusing readers.
func (d *decoder) zlib(src []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(src)
	zr, ok := d.pool.Get().(io.ReadCloser)
	if ok {
		if err := zr.(zlib.Resetter).Reset(br, nil); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(br); err != nil {
			return nil, err
		}
	}
	out, err := readLimited(zr, limit)
	d.pool.Put(zr)
	return out, err
}

// xz decodes an xz stream (with any BCJ filter mksquashfs -Xbcj adds), reusing readers.
func (d *decoder) xz(src []byte, limit int) ([]byte, error) {
	br := bytes.NewReader(src)
	xr, ok := d.pool.Get().(*xz.Reader)
	if ok {
		if err := xr.Reset(br); err != nil {
			return nil, err
		}
	} else {
		var err error
		if xr, err = xz.NewReader(br, d.dictMax); err != nil {
			return nil, err
		}
	}
	out, err := readLimited(xr, limit)
	d.pool.Put(xr)
	return out, err
}

// decodeLZMA decodes a classic .lzma stream (lzma_wrapper.c writes the 13-byte header with the
// uncompressed size). Every match distance is below limit, so the header's dictionary size is
// lowered to limit: a corrupt header cannot make the decoder allocate more.
func decodeLZMA(src []byte, limit int) ([]byte, error) {
	if len(src) < lzma.HeaderLen {
		return nil, corrupt("lzma block of %d bytes is shorter than its header", len(src))
	}
	dictCap := max(limit, lzma.MinDictCap)
	hdr := bytes.Clone(src[:lzma.HeaderLen])
	le := binary.LittleEndian
	if le.Uint32(hdr[1:]) > uint32(dictCap) {
		le.PutUint32(hdr[1:], uint32(dictCap))
	}
	if size := le.Uint64(hdr[5:]); size != ^uint64(0) && size > uint64(limit) {
		return nil, corrupt("lzma header says %d bytes, a block holds at most %d", size, limit)
	}
	r, err := lzma.ReaderConfig{DictCap: dictCap}.NewReader(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(src[lzma.HeaderLen:])))
	if err != nil {
		return nil, err
	}
	return readLimited(r, limit)
}

// zstdDecoder is shared by all images: DecodeAll is safe for concurrent use.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderMaxMemory(1<<maxBlockLog))
})

// readLimited reads r to its io.EOF, which must come within limit bytes. (io.ReadFull would
// not do: it turns a decoder's io.ErrUnexpectedEOF, a truncated stream, into a short read.)
func readLimited(r io.Reader, limit int) ([]byte, error) {
	out := make([]byte, limit+1)
	n := 0
	for stalls := 0; stalls < 100; {
		k, err := r.Read(out[n:])
		n += k
		switch {
		case n > limit:
			return nil, errors.New("block decodes past its size")
		case err == io.EOF:
			return out[:n], nil
		case err != nil:
			return nil, err
		case k == 0:
			stalls++
		}
	}
	return nil, errors.New("decoder makes no progress")
}
