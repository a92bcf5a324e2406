package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// TestDecompress checks each decoder (lzo is covered by the mksquashfs images only: no lzo
// encoder is at hand) on a good stream, reused, and on the failures that must be errors: a
// truncated stream (not a short block), a stream that decodes past the block, garbage.
func TestDecompress(t *testing.T) {
	want := []byte(strings.Repeat("squashfs block data ", 3000))
	encoders := map[uint16]func() []byte{
		Gzip: func() []byte {
			var b bytes.Buffer
			w := zlib.NewWriter(&b)
			w.Write(want)
			w.Close()
			return b.Bytes()
		},
		LZMA: func() []byte {
			var b bytes.Buffer
			w, err := lzma.WriterConfig{SizeInHeader: true, Size: int64(len(want)), DictCap: 1 << 17}.NewWriter(&b)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(want)
			w.Close()
			return b.Bytes()
		},
		XZ: func() []byte {
			var b bytes.Buffer
			w, err := xz.WriterConfig{DictCap: 1 << 17}.NewWriter(&b)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(want)
			w.Close()
			return b.Bytes()
		},
		LZ4: func() []byte {
			b := make([]byte, lz4.CompressBlockBound(len(want)))
			n, err := lz4.CompressBlock(want, b, nil)
			if err != nil {
				t.Fatal(err)
			}
			return b[:n]
		},
		Zstd: func() []byte {
			w, _ := zstd.NewWriter(nil)
			return w.EncodeAll(want, nil)
		},
	}
	for id, enc := range encoders {
		t.Run(CompressorName(id), func(t *testing.T) {
			raw := enc()
			d := newDecoder(&Superblock{Compression: id, BlockSize: 1 << 17})
			for range 2 { // the second time through pooled readers
				if got, err := d.decompress(raw, 1<<17); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("decompress: %d bytes, %v", len(got), err)
				}
			}
			if got, err := d.decompress(raw[:len(raw)*2/3], 1<<17); !errors.Is(err, ErrCorrupt) {
				t.Errorf("truncated stream: %d bytes, %v; want ErrCorrupt", len(got), err)
			}
			if _, err := d.decompress(raw, len(want)-1); !errors.Is(err, ErrCorrupt) {
				t.Errorf("stream longer than the block: %v, want ErrCorrupt", err)
			}
			if _, err := d.decompress([]byte("no stream of any compressor"), 1<<17); !errors.Is(err, ErrCorrupt) {
				t.Errorf("garbage: %v, want ErrCorrupt", err)
			}
		})
	}
	// an lzma header asking for a 4 GiB dictionary is decoded with one of the block's size;
	// one claiming more data than a block holds is refused
	raw := encoders[LZMA]()
	d := newDecoder(&Superblock{Compression: LZMA, BlockSize: 1 << 17})
	big := bytes.Clone(raw)
	binary.LittleEndian.PutUint32(big[1:], 0xffffffff)
	if got, err := d.decompress(big, 1<<17); err != nil || !bytes.Equal(got, want) {
		t.Errorf("lzma with a huge dictionary size: %d bytes, %v", len(got), err)
	}
	binary.LittleEndian.PutUint64(big[5:], 1<<40)
	if _, err := d.decompress(big, 1<<17); !errors.Is(err, ErrCorrupt) {
		t.Errorf("lzma claiming 1 TiB: %v, want ErrCorrupt", err)
	}
}
