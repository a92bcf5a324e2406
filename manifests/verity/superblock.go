package verity

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SuperblockSize is the size of the veritysetup superblock (struct verity_sb in cryptsetup's
// lib/verity/verity.c).
const SuperblockSize = 512

// superblockMagic is verity_sb.signature.
const superblockMagic = "verity\x00\x00"

// maxSaltSize is the size of verity_sb.salt; cryptsetup refuses a larger salt_size.
const maxSaltSize = 256

// Block sizes: cryptsetup accepts powers of two from 512 bytes to 512 KiB
// (VERITY_BLOCK_SIZE_OK); the kernel accepts at most the page size. 64 KiB covers every page
// size Linux has and keeps one block buffer small.
const (
	minBlockSize = 512
	maxBlockSize = 64 << 10
)

// Algorithm is the only hash algorithm supported: what systemd-repart and veritysetup write by
// default.
const Algorithm = "sha256"

// digestSize is the size of a sha256 digest, and of one hash entry in a hash block (format 1
// pads each entry to a power of two, which 32 already is).
const digestSize = 32

// Params describes a hash tree: the fields of the veritysetup superblock, or what a caller
// knows of a hash device written with `veritysetup format --no-superblock`.
type Params struct {
	// HashType is the format: 1 is the normal format; 0 (Chrome OS) is not supported.
	HashType uint32
	// Algorithm is the hash algorithm's name as stored, e.g. "sha256".
	Algorithm string
	// DataBlockSize and HashBlockSize are in bytes.
	DataBlockSize uint32
	HashBlockSize uint32
	// DataBlocks is the number of data blocks the tree covers.
	DataBlocks uint64
	// Salt is prepended to every block before it is hashed (format 1).
	Salt []byte
	// UUID is the hash device's UUID from the superblock (not the GPT partition UUID); zero
	// without a superblock. dm-verity does not use it.
	UUID [16]byte
	// HashOffset is the byte offset of the hash tree in the hash device: the superblock rounded
	// up to a hash block when there is one (cryptsetup's VERITY_hash_offset_block), else where
	// the caller says the tree starts.
	HashOffset int64
}

// UUIDString formats UUID as veritysetup dump prints it.
func (p *Params) UUIDString() string { return formatUUID(p.UUID[:]) }

// DataSize is the number of data bytes the tree covers.
func (p *Params) DataSize() int64 { return int64(p.DataBlocks) * int64(p.DataBlockSize) }

// ParseSuperblock reads a veritysetup superblock (format version 1) from the first 512 bytes of
// b, little endian, as cryptsetup's VERITY_read_sb does, and checks it: magic, version 1, hash
// type 1, sha256, block sizes, salt size, a non-zero block count that fits 64 bits in bytes.
// The hash tree then starts at the next hash-block boundary after the superblock.
func ParseSuperblock(b []byte) (*Params, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("verity superblock: %d bytes, want %d", len(b), SuperblockSize)
	}
	sb := b[:SuperblockSize]
	if string(sb[0:8]) != superblockMagic {
		return nil, fmt.Errorf("verity superblock: magic %q, want %q (not a veritysetup hash device, or one formatted with --no-superblock)", sb[0:8], superblockMagic)
	}
	le := binary.LittleEndian
	if v := le.Uint32(sb[8:12]); v != 1 {
		return nil, fmt.Errorf("verity superblock: version %d, this tool reads version 1", v)
	}
	alg := sb[32:64]
	if i := bytes.IndexByte(alg, 0); i >= 0 {
		alg = alg[:i]
	}
	p := &Params{
		HashType:      le.Uint32(sb[12:16]),
		Algorithm:     string(alg),
		DataBlockSize: le.Uint32(sb[64:68]),
		HashBlockSize: le.Uint32(sb[68:72]),
		DataBlocks:    le.Uint64(sb[72:80]),
	}
	copy(p.UUID[:], sb[16:32])
	saltSize := int(le.Uint16(sb[80:82]))
	if saltSize > maxSaltSize {
		return nil, fmt.Errorf("verity superblock: salt size %d, at most %d", saltSize, maxSaltSize)
	}
	p.Salt = append([]byte(nil), sb[88:88+saltSize]...)
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("verity superblock: %w", err)
	}
	// VERITY_hash_offset_block: the superblock, rounded up to a whole hash block.
	p.HashOffset = int64((SuperblockSize + p.HashBlockSize - 1) / p.HashBlockSize * p.HashBlockSize)
	return p, nil
}

// ReadSuperblock reads and parses the superblock at the start of a hash device. systemd's
// dissect-image.c loads it with crypt_load(CRYPT_VERITY) at offset 0 of the hash partition, so a
// DDI's hash partition always has one.
func ReadSuperblock(hash io.ReaderAt) (*Params, error) {
	b := make([]byte, SuperblockSize)
	if err := readFull(hash, b, 0); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("verity superblock: hash device is shorter than %d bytes", SuperblockSize)
		}
		return nil, fmt.Errorf("verity superblock: %w", err)
	}
	return ParseSuperblock(b)
}

// check validates the fields that the hash tree depends on.
func (p *Params) check() error {
	switch p.HashType {
	case 1:
	case 0:
		return errors.New("hash type 0 (Chrome OS format) is not supported, only type 1")
	default:
		return fmt.Errorf("hash type %d is not supported, only type 1", p.HashType)
	}
	if !strings.EqualFold(p.Algorithm, Algorithm) {
		return fmt.Errorf("hash algorithm %q is not supported, only %s (what systemd-repart and veritysetup use by default)", p.Algorithm, Algorithm)
	}
	if err := checkBlockSize("data block size", p.DataBlockSize); err != nil {
		return err
	}
	if err := checkBlockSize("hash block size", p.HashBlockSize); err != nil {
		return err
	}
	if len(p.Salt) > maxSaltSize {
		return fmt.Errorf("salt size %d, at most %d", len(p.Salt), maxSaltSize)
	}
	if p.DataBlocks == 0 {
		return errors.New("data blocks 0: the tree covers nothing")
	}
	if p.DataBlocks > uint64(1<<63-1)/uint64(p.DataBlockSize) {
		return fmt.Errorf("data blocks %d of %d bytes overflow 64 bits", p.DataBlocks, p.DataBlockSize)
	}
	if p.HashOffset < 0 || p.HashOffset%int64(p.HashBlockSize) != 0 {
		return fmt.Errorf("hash offset %d is not a multiple of the hash block size %d", p.HashOffset, p.HashBlockSize)
	}
	return nil
}

func checkBlockSize(field string, v uint32) error {
	if v < minBlockSize || v > maxBlockSize || v&(v-1) != 0 {
		return fmt.Errorf("%s %d: want a power of two from %d to %d", field, v, minBlockSize, maxBlockSize)
	}
	return nil
}

// formatUUID writes 16 bytes in the canonical 8-4-4-4-12 form.
func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
