package verity

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// ErrCorrupt is wrapped by every error that reports bytes not matching the hash tree or the
// root hash: a tampered or damaged image.
var ErrCorrupt = errors.New("integrity check failed")

// maxLevels is DM_VERITY_MAX_LEVELS in the kernel.
const maxLevels = 63

// Tree is a dm-verity hash tree whose hash blocks have all been checked against the root hash.
// It reads the data partition as the dm-verity device does: ReadAt hashes every data block it
// touches and compares it with the tree, returning a *CorruptionError (wrapping ErrCorrupt)
// for a block that does not match, so a reader sees only verified bytes. It is an io.ReaderAt
// of Size bytes (DataBlocks × DataBlockSize; bytes of the data partition past that are not
// covered by the tree and not readable through it), safe for concurrent use.
//
// Design: the tree is read and verified once, eagerly, and kept in memory (about 1/128 of the
// data size with 4 KiB blocks, 1/16 with 512-byte blocks), because it is small and verifying it
// costs that little; data blocks are verified lazily, on every read, and never cached, so that a
// block changed on disk after an earlier read is still caught (dm-verity's default, not its
// check_at_most_once option). Reading the few files a firmware image is consulted for thus
// hashes those blocks only (see BenchmarkTree* for the figures).
type Tree struct {
	params   Params
	root     []byte
	rootFrom RootSource
	data     io.ReaderAt
	bits     uint     // log2 of hash entries per hash block
	levels   int      // 0: the root hash is the hash of the only data block
	start    []uint64 // start[i]: first hash block of level i (level 0 hashes data blocks)
	count    []uint64 // count[i]: hash blocks on level i
	base     uint64   // first hash block kept in tree (the top level's)
	tree     []byte   // verified hash blocks base..end
	bufs     sync.Pool
	hashers  sync.Pool
	dataSize int64
}

// CorruptionError reports a data block whose hash does not match the hash tree.
type CorruptionError struct {
	Block  uint64 // data block number
	Offset int64  // its byte offset in the data partition
	Want   []byte // the hash the tree holds for it
	Got    []byte // the hash of the bytes read
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("data block %d (offset %d) is corrupt: hash tree says %x, block hashes to %x", e.Block, e.Offset, e.Want, e.Got)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// RootSource says where an expected root hash comes from, for messages.
type RootSource string

// Sources of a root hash, in the order systemd prefers them.
const (
	SourceCaller    RootSource = "the caller"
	SourceSignature RootSource = "the signature"
	SourceUUIDs     RootSource = "the partition UUIDs"
)

// Open reads the superblock at the start of hash (hashSize bytes, the hash partition), verifies
// every hash block of the tree against rootHash (32 bytes), and returns the Tree reading data
// (dataSize bytes, the data partition) through it. source names where rootHash came from in the
// mismatch error ("root hash mismatch: the signature covers …, the hash partition gives …").
// Every error about bytes that do not match wraps ErrCorrupt.
func Open(data io.ReaderAt, dataSize int64, hash io.ReaderAt, hashSize int64, rootHash []byte, source RootSource) (*Tree, error) {
	p, err := ReadSuperblock(hash)
	if err != nil {
		return nil, err
	}
	return OpenParams(data, dataSize, hash, hashSize, *p, rootHash, source)
}

// OpenParams is Open for a hash device whose parameters are known from elsewhere (one written
// with `veritysetup format --no-superblock`: p.HashOffset is where its tree starts).
func OpenParams(data io.ReaderAt, dataSize int64, hash io.ReaderAt, hashSize int64, p Params, rootHash []byte, source RootSource) (*Tree, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("verity parameters: %w", err)
	}
	if len(rootHash) != digestSize {
		return nil, fmt.Errorf("root hash from %s: %d bytes, want %d for %s", source, len(rootHash), digestSize, Algorithm)
	}
	if p.DataSize() > dataSize {
		return nil, fmt.Errorf("data partition: %d bytes, the hash tree covers %d blocks of %d bytes = %d", dataSize, p.DataBlocks, p.DataBlockSize, p.DataSize())
	}
	t := &Tree{params: p, root: append([]byte(nil), rootHash...), rootFrom: source, data: data, dataSize: p.DataSize()}
	t.params.Salt = append([]byte(nil), p.Salt...)
	t.hashers.New = func() any { return sha256.New() }
	dbs := int(p.DataBlockSize)
	t.bufs.New = func() any { b := make([]byte, dbs); return &b }
	if err := t.layout(hashSize); err != nil {
		return nil, err
	}
	if err := t.loadTree(hash); err != nil {
		return nil, err
	}
	return t, nil
}

// layout computes the levels and where each one lies, as the kernel's verity_ctr does:
// levels is the smallest number with (data_blocks-1) >> (bits*levels) == 0, and level i holds
// ceil(data_blocks / 2^(bits*(i+1))) blocks; the top level comes first on disk, level 0 last.
func (t *Tree) layout(hashSize int64) error {
	p := &t.params
	perBlock := p.HashBlockSize / digestSize
	for perBlock > 1 {
		t.bits++
		perBlock >>= 1
	}
	for t.bits*uint(t.levels) < 64 && (p.DataBlocks-1)>>(t.bits*uint(t.levels)) != 0 {
		t.levels++
	}
	if t.levels > maxLevels {
		return fmt.Errorf("hash tree: %d levels, the kernel allows %d", t.levels, maxLevels)
	}
	hbs := uint64(p.HashBlockSize)
	pos := uint64(p.HashOffset) / hbs
	t.base = pos
	t.start = make([]uint64, t.levels)
	t.count = make([]uint64, t.levels)
	for i := t.levels - 1; i >= 0; i-- {
		shift := t.bits * uint(i+1)
		n := p.DataBlocks >> shift
		if p.DataBlocks&(1<<shift-1) != 0 {
			n++
		}
		t.start[i], t.count[i] = pos, n
		pos += n
	}
	if end := pos * hbs; end > uint64(hashSize) || end/hbs != pos {
		return fmt.Errorf("hash partition: %d bytes, the hash tree for %d data blocks ends at %d", hashSize, p.DataBlocks, pos*hbs)
	}
	return nil
}

// loadTree reads the hash blocks and checks each one against its entry in the level above,
// the top block against the root hash.
func (t *Tree) loadTree(hash io.ReaderAt) error {
	if t.levels == 0 {
		// One data block and no hash block: the root hash is the block's hash. Check it now, so
		// that an opened tree always matched its root hash.
		buf := make([]byte, t.params.DataBlockSize)
		if err := readFull(t.data, buf, 0); err != nil {
			return fmt.Errorf("data partition: block 0: %w", err)
		}
		h := t.hasher()
		defer t.hashers.Put(h)
		if sum := t.sum(h, nil, buf); subtle.ConstantTimeCompare(sum, t.root) != 1 {
			return fmt.Errorf("%w: root hash mismatch: %s %x, the only data block gives %x", ErrCorrupt, t.source(), t.root, sum)
		}
		return nil
	}
	hbs := uint64(t.params.HashBlockSize)
	end := t.start[0] + t.count[0]
	t.tree = make([]byte, (end-t.base)*hbs)
	if err := readFull(hash, t.tree, int64(t.base*hbs)); err != nil {
		return fmt.Errorf("hash partition: reading the hash tree (%d bytes at %d): %w", len(t.tree), t.base*hbs, err)
	}
	h := t.hasher()
	defer t.hashers.Put(h)
	sum := make([]byte, 0, digestSize)
	top := t.levels - 1
	sum = t.sum(h, sum[:0], t.block(t.start[top]))
	if subtle.ConstantTimeCompare(sum, t.root) != 1 {
		return fmt.Errorf("%w: root hash mismatch: %s %x, the hash partition gives %x", ErrCorrupt, t.source(), t.root, sum)
	}
	for level := top - 1; level >= 0; level-- {
		for i := uint64(0); i < t.count[level]; i++ {
			sum = t.sum(h, sum[:0], t.block(t.start[level]+i))
			want := t.entry(level+1, i)
			if !bytes.Equal(sum, want) {
				return fmt.Errorf("%w: hash block %d (level %d of %d, at byte %d of the hash partition) does not match the level above: entry says %x, block hashes to %x",
					ErrCorrupt, i, level, t.levels, (t.start[level]+i)*hbs, want, sum)
			}
		}
	}
	return nil
}

// source names where the expected root hash came from, with a verb, for messages: "the
// signature covers", "the caller gives", "the partition UUIDs give".
func (t *Tree) source() string {
	switch t.rootFrom {
	case "":
		return "the expected root hash is"
	case SourceSignature:
		return string(t.rootFrom) + " covers"
	case SourceUUIDs:
		return string(t.rootFrom) + " give"
	}
	return string(t.rootFrom) + " gives"
}

// block returns hash block n (absolute block number in the hash partition) of the tree.
func (t *Tree) block(n uint64) []byte {
	hbs := uint64(t.params.HashBlockSize)
	off := (n - t.base) * hbs
	return t.tree[off : off+hbs]
}

// entry returns the hash entry for child i (a block of level-1, or data block i for level 0)
// on the given level: verity_hash_at_level in dm-verity-target.c.
func (t *Tree) entry(level int, i uint64) []byte {
	b := t.block(t.start[level] + i>>t.bits)
	off := (i & (1<<t.bits - 1)) * digestSize
	return b[off : off+digestSize]
}

// leaf returns the expected hash of data block i.
func (t *Tree) leaf(i uint64) []byte {
	if t.levels == 0 {
		return t.root
	}
	return t.entry(0, i)
}

func (t *Tree) hasher() hash.Hash { return t.hashers.Get().(hash.Hash) }

// sum appends hash(salt || b) to dst: format 1 puts the salt first.
func (t *Tree) sum(h hash.Hash, dst, b []byte) []byte {
	h.Reset()
	h.Write(t.params.Salt)
	h.Write(b)
	return h.Sum(dst)
}

// Params returns the tree's parameters.
func (t *Tree) Params() Params { return t.params }

// RootHash returns the root hash the tree was verified against.
func (t *Tree) RootHash() []byte { return append([]byte(nil), t.root...) }

// Size is the number of data bytes readable through the tree.
func (t *Tree) Size() int64 { return t.dataSize }

// ReadAt reads verified data: every data block the range touches is read whole, hashed and
// compared with the tree before any of it is copied to p.
func (t *Tree) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("verity: negative offset %d", off)
	}
	if off >= t.dataSize {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	dbs := int64(t.params.DataBlockSize)
	bp := t.bufs.Get().(*[]byte)
	defer t.bufs.Put(bp)
	buf := *bp
	h := t.hasher()
	defer t.hashers.Put(h)
	var sum [digestSize]byte
	n := 0
	for n < len(p) && off < t.dataSize {
		blk := uint64(off / dbs)
		if err := t.readBlock(h, sum[:0], blk, buf); err != nil {
			return n, err
		}
		c := copy(p[n:], buf[off%dbs:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readBlock reads data block blk into buf (one data block long) and checks it.
func (t *Tree) readBlock(h hash.Hash, sum []byte, blk uint64, buf []byte) error {
	off := int64(blk) * int64(t.params.DataBlockSize)
	if err := readFull(t.data, buf, off); err != nil {
		return fmt.Errorf("data partition: block %d at %d: %w", blk, off, err)
	}
	sum = t.sum(h, sum, buf)
	if want := t.leaf(blk); subtle.ConstantTimeCompare(sum, want) != 1 {
		return &CorruptionError{Block: blk, Offset: off, Want: append([]byte(nil), want...), Got: append([]byte(nil), sum...)}
	}
	return nil
}

// VerifyData reads and checks every data block, as `veritysetup verify` does; it returns the
// *CorruptionError of the lowest-numbered block that does not match, or a read error. The
// blocks are split into contiguous ranges hashed side by side, one per CPU: hashing is the
// cost (about 1.1 GB/s per core with SHA-NI here, BenchmarkTreeVerifyData64MiB).
func (t *Tree) VerifyData() error {
	blocks := t.params.DataBlocks
	workers := uint64(runtime.GOMAXPROCS(0))
	// A range shorter than 1 MiB is not worth a goroutine.
	if most := blocks * uint64(t.params.DataBlockSize) >> 20; workers > most {
		workers = max(most, 1)
	}
	per := (blocks + workers - 1) / workers
	errs := make([]error, workers)
	// lowest is the lowest bad block found so far: a range past it stops early, one before it
	// goes on, so the block reported does not depend on timing.
	var lowest atomic.Uint64
	lowest.Store(math.MaxUint64)
	var wg sync.WaitGroup
	for w := uint64(0); w < workers; w++ {
		from, to := w*per, min((w+1)*per, blocks)
		if from >= to {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = t.verifyRange(from, to, &lowest)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// verifyRange checks data blocks from..to-1, reading 1 MiB at a time.
func (t *Tree) verifyRange(from, to uint64, lowest *atomic.Uint64) error {
	dbs := uint64(t.params.DataBlockSize)
	per := max((1<<20)/dbs, 1)
	buf := make([]byte, per*dbs)
	h := t.hasher()
	defer t.hashers.Put(h)
	var sum [digestSize]byte
	for blk := from; blk < to && blk < lowest.Load(); {
		n := min(per, to-blk)
		b := buf[:n*dbs]
		off := int64(blk * dbs)
		if err := readFull(t.data, b, off); err != nil {
			lower(lowest, blk)
			return fmt.Errorf("data partition: %d bytes at %d: %w", len(b), off, err)
		}
		for i := uint64(0); i < n; i++ {
			s := t.sum(h, sum[:0], b[i*dbs:(i+1)*dbs])
			if want := t.leaf(blk + i); subtle.ConstantTimeCompare(s, want) != 1 {
				lower(lowest, blk+i)
				return &CorruptionError{Block: blk + i, Offset: off + int64(i*dbs), Want: append([]byte(nil), want...), Got: append([]byte(nil), s...)}
			}
		}
		blk += n
	}
	return nil
}

// lower sets lowest to blk if blk is lower.
func lower(lowest *atomic.Uint64, blk uint64) {
	for cur := lowest.Load(); blk < cur && !lowest.CompareAndSwap(cur, blk); cur = lowest.Load() {
	}
}

// readFull fills b from r at off. A short read is an error (io.ErrUnexpectedEOF when the input
// ends); io.EOF together with a full buffer, which io.ReaderAt allows at the end, is not.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// hexString is the lowercase hex systemd's hexmem() writes, for messages and signatures.
func hexString(b []byte) string { return hex.EncodeToString(b) }
