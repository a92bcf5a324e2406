package erofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// On-disk constants from erofs_fs.h.
const (
	SuperOffset = 1024       // EROFS_SUPER_OFFSET: room for x86 boot sectors
	SuperMagic  = 0xE0F5E1E2 // EROFS_SUPER_MAGIC_V1, little endian at SuperOffset

	superBaseSize = 128 // erofs_super_block without extension slots
	superExtSlot  = 16  // EROFS_SB_EXTSLOT_SIZE

	compatSBChecksum = 0x00000001

	incompatLZ40Padding  = 0x00000001
	incompatComprCfgs    = 0x00000002 // also BIG_PCLUSTER
	incompatChunkedFile  = 0x00000004
	incompatDeviceTable  = 0x00000008 // also COMPR_HEAD2
	incompatZTailPacking = 0x00000010
	incompatFragments    = 0x00000020 // also DEDUPE
	incompatXattrPrefix  = 0x00000040
	incompat48Bit        = 0x00000080
	incompatMetabox      = 0x00000100
	incompatKnown        = incompatMetabox<<1 - 1
	incompatSupported    = incompatLZ40Padding | incompatComprCfgs | incompatChunkedFile |
		incompatDeviceTable | incompatZTailPacking | incompatFragments | incompatXattrPrefix
)

// Compression algorithms (h_algorithmtype, available_compr_algs bits).
const (
	AlgLZ4     = 0
	AlgLZMA    = 1
	AlgDeflate = 2
	AlgZstd    = 3
	algMax     = 4
	// userspace-only formats for plain (uncompressed) pclusters, as in erofs-utils
	algShifted    = algMax
	algInterlaced = algMax + 1
)

var algNames = [...]string{"lz4", "lzma", "deflate", "zstd", "plain", "plain-interlaced"}

// AlgName names a compression algorithm number of the on-disk format.
func AlgName(alg int) string {
	if alg >= 0 && alg < len(algNames) {
		return algNames[alg]
	}
	return fmt.Sprintf("unknown(%d)", alg)
}

// ErrCorrupt is wrapped by every error that reports an inconsistent image.
var ErrCorrupt = errors.New("corrupt erofs image")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: erofs: %s", errors.ErrUnsupported, fmt.Sprintf(format, args...))
}

// Superblock holds the fields of erofs_super_block this reader uses.
type Superblock struct {
	Checksum        uint32
	FeatureCompat   uint32
	BlkSzBits       uint8
	ExtSlots        uint8
	RootNID         uint64
	Inodes          uint64
	Epoch           uint64 // base seconds of compact inodes' mtime (build time in older images)
	Blocks          uint32
	MetaBlkAddr     uint32
	XattrBlkAddr    uint32
	UUID            [16]byte
	VolumeName      string
	FeatureIncompat uint32
	// ComprAlgs is available_compr_algs with COMPR_CFGS, else the lz4 bit when LZ4_0PADDING
	// or lz4_max_distance says lz4 may be in use (see z_erofs_load_lz4_config).
	ComprAlgs    uint16
	ExtraDevices uint16
	DirBlkBits   uint8
	PackedNID    uint64
}

// BlockSize is 1 << BlkSzBits.
func (sb *Superblock) BlockSize() int64 { return 1 << sb.BlkSzBits }

// readSuperblock parses and validates the superblock; size is the image size in bytes.
// The checks run in this order: length, magic, block size, superblock size, checksum,
// feature bits, layout fields.
func readSuperblock(r io.ReaderAt, size int64) (*Superblock, error) {
	if size < SuperOffset+superBaseSize {
		return nil, corrupt("image is %d bytes, smaller than the superblock end (%d)", size, SuperOffset+superBaseSize)
	}
	b := make([]byte, superBaseSize)
	if _, err := r.ReadAt(b, SuperOffset); err != nil {
		return nil, fmt.Errorf("erofs: reading superblock: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != SuperMagic {
		return nil, corrupt("superblock magic is 0x%08x, want 0x%08x", m, uint32(SuperMagic))
	}
	sb := &Superblock{
		Checksum:        le.Uint32(b[4:]),
		FeatureCompat:   le.Uint32(b[8:]),
		BlkSzBits:       b[12],
		ExtSlots:        b[13],
		RootNID:         uint64(le.Uint16(b[14:])),
		Inodes:          le.Uint64(b[16:]),
		Epoch:           le.Uint64(b[24:]),
		Blocks:          le.Uint32(b[36:]),
		MetaBlkAddr:     le.Uint32(b[40:]),
		XattrBlkAddr:    le.Uint32(b[44:]),
		FeatureIncompat: le.Uint32(b[80:]),
		ExtraDevices:    le.Uint16(b[86:]),
		DirBlkBits:      b[90],
		PackedNID:       le.Uint64(b[96:]),
	}
	copy(sb.UUID[:], b[48:64])
	sb.VolumeName = cString(b[64:80])
	u1 := le.Uint16(b[84:])

	// blkszbits: 512 B up to 64 KiB blocks (erofs-utils accepts 9..EROFS_MAX_BLOCK_SIZE bits).
	if sb.BlkSzBits < 9 || sb.BlkSzBits > 16 {
		return nil, corrupt("superblock blkszbits is %d, want 9..16", sb.BlkSzBits)
	}
	sbSize := int64(superBaseSize + int(sb.ExtSlots)*superExtSlot)
	if SuperOffset+sbSize > size {
		return nil, corrupt("superblock sb_extslots %d makes it end at %d, past the image end %d", sb.ExtSlots, SuperOffset+sbSize, size)
	}
	if sb.FeatureCompat&compatSBChecksum != 0 {
		if err := verifyChecksum(r, size, sb); err != nil {
			return nil, err
		}
	}
	if unknown := sb.FeatureIncompat &^ incompatKnown; unknown != 0 {
		return nil, unsupported("unknown incompatible feature bits 0x%x (feature_incompat 0x%x)", unknown, sb.FeatureIncompat)
	}
	if f := sb.FeatureIncompat &^ incompatSupported; f != 0 {
		return nil, unsupported("feature_incompat 0x%x uses 48BIT/METABOX layouts (bits 0x%x)", sb.FeatureIncompat, f)
	}
	if sb.ExtraDevices != 0 {
		return nil, unsupported("image needs %d extra devices", sb.ExtraDevices)
	}
	if sb.DirBlkBits != 0 {
		return nil, unsupported("dirblkbits is %d, only 0 is defined", sb.DirBlkBits)
	}
	switch {
	case sb.FeatureIncompat&incompatComprCfgs != 0:
		sb.ComprAlgs = u1
		if u1&^(1<<algMax-1) != 0 {
			return nil, unsupported("available_compr_algs 0x%x names unknown algorithms", u1)
		}
	case u1 != 0 || sb.FeatureIncompat&incompatLZ40Padding != 0:
		sb.ComprAlgs = 1 << AlgLZ4
	}
	return sb, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verifyChecksum checks the crc32c of the superblock's block from SuperOffset on, with the
// checksum field zeroed (erofs_superblock_csum_verify in erofs-utils lib/super.c). The kernel's
// crc32c(~0, ...) has no final inversion, Go's has: hence the ^.
func verifyChecksum(r io.ReaderAt, size int64, sb *Superblock) error {
	n := sb.BlockSize()
	if n > SuperOffset {
		n -= SuperOffset
	}
	if SuperOffset+n > size {
		return corrupt("checksummed superblock area [%d, %d) passes the image end %d", SuperOffset, SuperOffset+n, size)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, SuperOffset); err != nil {
		return fmt.Errorf("erofs: reading superblock for checksum: %w", err)
	}
	binary.LittleEndian.PutUint32(buf[4:], 0)
	if got := ^crc32.Checksum(buf, castagnoli); got != sb.Checksum {
		return corrupt("superblock checksum is 0x%08x, computed 0x%08x", sb.Checksum, got)
	}
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
