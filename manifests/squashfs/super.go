package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// On-disk constants from squashfs_fs.h.
const (
	Magic = 0x73717368 // SQUASHFS_MAGIC, "hsqs" little endian at offset 0

	superSize     = 96 // struct squashfs_super_block
	metadataSize  = 8192
	minBlockLog   = 12 // 4 KiB, the smallest block mksquashfs writes
	maxBlockLog   = 20 // SQUASHFS_FILE_MAX_LOG: 1 MiB
	invalidTable  = ^uint64(0)
	invalidFrag   = 0xffffffff // SQUASHFS_INVALID_FRAG
	metaUncompBit = 1 << 15    // SQUASHFS_COMPRESSED_BIT (set: stored uncompressed)
	dataUncompBit = 1 << 24    // SQUASHFS_COMPRESSED_BIT_BLOCK

	flagCompOpts = 1 << 10 // SQUASHFS_COMP_OPT: compressor options follow the superblock
)

// Compressor ids (squashfs_super_block.compression).
const (
	Gzip = 1 // zlib streams
	LZMA = 2
	LZO  = 3
	XZ   = 4
	LZ4  = 5
	Zstd = 6
)

var compNames = map[uint16]string{Gzip: "gzip", LZMA: "lzma", LZO: "lzo", XZ: "xz", LZ4: "lz4", Zstd: "zstd"}

// CompressorName names a compressor id of the on-disk format.
func CompressorName(id uint16) string {
	if n, ok := compNames[id]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", id)
}

// ErrCorrupt is wrapped by every error that reports an inconsistent image.
var ErrCorrupt = errors.New("corrupt squashfs image")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: squashfs: %s", errors.ErrUnsupported, fmt.Sprintf(format, args...))
}

// Superblock holds the fields of squashfs_super_block this reader uses.
type Superblock struct {
	Inodes              uint32
	MkfsTime            uint32
	BlockSize           uint32
	Fragments           uint32
	Compression         uint16
	BlockLog            uint16
	Flags               uint16
	Major, Minor        uint16
	RootInode           uint64 // inode reference: metadata block << 16 | offset
	BytesUsed           uint64
	InodeTableStart     uint64
	DirectoryTableStart uint64
	FragmentTableStart  uint64
	// XZDictSize is the dictionary size from the xz compressor options (0 without them).
	XZDictSize uint32
}

// readSuperblock parses and validates the superblock, then the compressor options; size is
// the image size in bytes. The checks follow squashfs_fill_super (fs/squashfs/super.c):
// magic, version, compressor, block size and log, root inode offset, bytes_used within the
// image, table starts in order within bytes_used.
func readSuperblock(r io.ReaderAt, size int64) (*Superblock, error) {
	if size < superSize {
		return nil, corrupt("image is %d bytes, smaller than the superblock (%d)", size, superSize)
	}
	b := make([]byte, superSize)
	if _, err := r.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == superSize) {
		return nil, fmt.Errorf("squashfs: reading superblock: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != Magic {
		return nil, corrupt("superblock magic is 0x%08x, want 0x%08x", m, uint32(Magic))
	}
	sb := &Superblock{
		Inodes:              le.Uint32(b[4:]),
		MkfsTime:            le.Uint32(b[8:]),
		BlockSize:           le.Uint32(b[12:]),
		Fragments:           le.Uint32(b[16:]),
		Compression:         le.Uint16(b[20:]),
		BlockLog:            le.Uint16(b[22:]),
		Flags:               le.Uint16(b[24:]),
		Major:               le.Uint16(b[28:]),
		Minor:               le.Uint16(b[30:]),
		RootInode:           le.Uint64(b[32:]),
		BytesUsed:           le.Uint64(b[40:]),
		InodeTableStart:     le.Uint64(b[64:]),
		DirectoryTableStart: le.Uint64(b[72:]),
		FragmentTableStart:  le.Uint64(b[80:]),
	}
	if sb.Major != 4 || sb.Minor != 0 {
		return nil, unsupported("version %d.%d, only 4.0 is read", sb.Major, sb.Minor)
	}
	if _, ok := compNames[sb.Compression]; !ok {
		return nil, unsupported("compressor id %d", sb.Compression)
	}
	if sb.BlockLog < minBlockLog || sb.BlockLog > maxBlockLog {
		return nil, corrupt("block_log is %d, want %d..%d", sb.BlockLog, minBlockLog, maxBlockLog)
	}
	if sb.BlockSize != 1<<sb.BlockLog {
		return nil, corrupt("block_size %d does not match block_log %d", sb.BlockSize, sb.BlockLog)
	}
	if off := sb.RootInode & 0xffff; off >= metadataSize {
		return nil, corrupt("root inode offset %d is past a metadata block (%d)", off, metadataSize)
	}
	if sb.BytesUsed > uint64(size) || sb.BytesUsed < superSize {
		return nil, corrupt("bytes_used %d is outside [%d, image size %d]", sb.BytesUsed, superSize, size)
	}
	if sb.InodeTableStart < superSize || sb.InodeTableStart >= sb.DirectoryTableStart || sb.DirectoryTableStart >= sb.BytesUsed {
		return nil, corrupt("inode table at %d and directory table at %d are not in order within [%d, %d)", sb.InodeTableStart, sb.DirectoryTableStart, superSize, sb.BytesUsed)
	}
	if sb.Fragments > 0 && (sb.FragmentTableStart == invalidTable || sb.FragmentTableStart >= sb.BytesUsed) {
		return nil, corrupt("%d fragments but the fragment table start %d is outside the image (%d bytes used)", sb.Fragments, sb.FragmentTableStart, sb.BytesUsed)
	}
	return sb, nil
}

// readCompOptions reads the compressor options metadata block that follows the superblock
// when SQUASHFS_COMP_OPT is set, and checks what the kernel checks (lz4_wrapper.c,
// xz_wrapper.c): lz4 options must name the legacy format, an xz dictionary size must be 2^n or
// 2^n + 2^(n+1). The other compressors' options only tune compression.
func (f *FS) readCompOptions() error {
	sb := f.sb
	if sb.Flags&flagCompOpts == 0 {
		return nil
	}
	if sb.Compression == LZMA {
		return corrupt("flags say lzma has compressor options; lzma has none")
	}
	opts, _, err := f.readMetaBlock(superSize, int64(sb.InodeTableStart))
	if err != nil {
		return fmt.Errorf("compressor options: %w", err)
	}
	le := binary.LittleEndian
	switch sb.Compression {
	case LZ4:
		if len(opts) < 8 {
			return corrupt("lz4 compressor options are %d bytes, want 8", len(opts))
		}
		if v := le.Uint32(opts); v != 1 {
			return unsupported("lz4 format version %d (only 1, LZ4_LEGACY, exists)", v)
		}
	case XZ:
		if len(opts) < 8 {
			return corrupt("xz compressor options are %d bytes, want 8", len(opts))
		}
		d := le.Uint32(opts)
		n := bits.TrailingZeros32(d)
		if d == 0 || (d != 1<<n && d != 3<<n) || d > 1<<30 {
			return corrupt("xz dictionary size %d is neither 2^n nor 2^n+2^(n+1)", d)
		}
		sb.XZDictSize = d
	}
	return nil
}
