package verity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// treeCase is one data size and block geometry. Sizes straddle the level boundaries: with
// 4 KiB hash blocks a block holds 128 entries, with 512-byte blocks 16.
type treeCase struct {
	blocks   int
	dbs, hbs uint32
}

var treeCases = []treeCase{
	{1, 4096, 4096},   // no hash level: the root is the data block's hash
	{2, 4096, 4096},   // one level
	{128, 4096, 4096}, // one full hash block
	{129, 4096, 4096}, // two levels
	{300, 4096, 4096},
	{1, 512, 512},
	{17, 512, 512},  // two levels of 16-entry blocks
	{257, 512, 512}, // three levels
	{1000, 512, 4096},
	{100, 4096, 512},
	{40, 1024, 2048},
}

func (c treeCase) String() string { return fmt.Sprintf("%dx%d-hash%d", c.blocks, c.dbs, c.hbs) }

// TestTreeMatchesVeritysetup: for each geometry, veritysetup's hash device and root hash are
// what the test writer produces, and Open accepts them and reads the data back.
func TestTreeMatchesVeritysetup(t *testing.T) {
	for _, c := range treeCases {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			data := randomBytes(t, c.blocks*int(c.dbs))
			salt := randomBytes(t, 32)
			dataPath := writeFile(t, dir, "data", data)
			hashPath, root := veritysetupFormat(t, dataPath,
				fmt.Sprintf("--data-block-size=%d", c.dbs), fmt.Sprintf("--hash-block-size=%d", c.hbs),
				fmt.Sprintf("--salt=%x", salt))
			dev := readFile(t, hashPath)

			ours, ourRoot := formatTree(t, data, c.dbs, c.hbs, salt)
			if !bytes.Equal(ourRoot, root) {
				t.Fatalf("root hash: veritysetup %x, test writer %x", root, ourRoot)
			}
			// veritysetup may leave the superblock's UUID different and pad the device; the tree
			// bytes after the superblock must be the same.
			off := int((SuperblockSize + c.hbs - 1) / c.hbs * c.hbs)
			if len(dev) < len(ours) || !bytes.Equal(dev[off:len(ours)], ours[off:]) {
				t.Fatalf("hash tree differs from veritysetup's (%d vs %d bytes)", len(ours), len(dev))
			}

			tr, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.VerifyData(); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if n, err := tr.ReadAt(got, 0); n != len(data) || err != nil {
				t.Fatalf("ReadAt: %d, %v", n, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("data read through the tree differs")
			}
		})
	}
}

// TestVeritysetupVerifiesGoTree: veritysetup verify accepts what the test writer writes, so the
// pure-Go tests below test the real format.
func TestVeritysetupVerifiesGoTree(t *testing.T) {
	tool := testkernel.Tool(t, "veritysetup")
	for _, c := range treeCases {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			data := randomBytes(t, c.blocks*int(c.dbs))
			dev, root := formatTree(t, data, c.dbs, c.hbs, randomBytes(t, 32))
			d := writeFile(t, dir, "data", data)
			h := writeFile(t, dir, "hash", dev)
			run(t, tool, "verify", d, h, fmt.Sprintf("%x", root))
		})
	}
}

func openGo(t *testing.T, c treeCase) (data, dev, root []byte, tr *Tree) {
	t.Helper()
	data = randomBytes(t, c.blocks*int(c.dbs))
	dev, root = formatTree(t, data, c.dbs, c.hbs, randomBytes(t, 32))
	tr, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller)
	if err != nil {
		t.Fatal(err)
	}
	return data, dev, root, tr
}

func TestReadAtRanges(t *testing.T) {
	data, _, _, tr := openGo(t, treeCase{5, 512, 512})
	if tr.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d", tr.Size(), len(data))
	}
	for _, r := range []struct{ off, n int }{{0, 1}, {511, 2}, {100, 1000}, {0, 2560}, {2559, 1}, {1024, 512}} {
		got := make([]byte, r.n)
		n, err := tr.ReadAt(got, int64(r.off))
		if n != r.n || err != nil || !bytes.Equal(got, data[r.off:r.off+r.n]) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v or wrong bytes", r.n, r.off, n, err)
		}
	}
	// Past the end: a short read with io.EOF, then io.EOF.
	got := make([]byte, 100)
	if n, err := tr.ReadAt(got, 2500); n != 60 || err != io.EOF || !bytes.Equal(got[:60], data[2500:]) {
		t.Errorf("ReadAt across the end = %d, %v", n, err)
	}
	if n, err := tr.ReadAt(got, 2560); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if n, err := tr.ReadAt(nil, 2560); n != 0 || err != nil {
		t.Errorf("empty ReadAt at the end = %d, %v", n, err)
	}
	if _, err := tr.ReadAt(got, -1); err == nil {
		t.Error("negative offset accepted")
	}
}

// TestReadAtConcurrent reads from many goroutines (run with -race).
func TestReadAtConcurrent(t *testing.T) {
	data, _, _, tr := openGo(t, treeCase{300, 4096, 4096})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 5000)
			for i := 0; i < 50; i++ {
				off := (g*7919 + i*104729) % (len(data) - len(buf))
				if _, err := tr.ReadAt(buf, int64(off)); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, data[off:off+len(buf)]) {
					errs <- fmt.Errorf("goroutine %d: wrong bytes at %d", g, off)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTamperedData: a flipped data bit passes Open (dm-verity checks data on read), fails the
// read of that block only, and fails VerifyData, naming the block.
func TestTamperedData(t *testing.T) {
	for _, c := range []treeCase{{300, 4096, 4096}, {1, 4096, 4096}, {257, 512, 512}} {
		t.Run(c.String(), func(t *testing.T) {
			data := randomBytes(t, c.blocks*int(c.dbs))
			dev, root := formatTree(t, data, c.dbs, c.hbs, randomBytes(t, 32))
			at := len(data) - 7 // in the last block
			bad := flip(data, at)
			if c.blocks == 1 {
				// No hash block: the only data block is checked against the root hash at Open.
				if _, err := Open(bytes.NewReader(bad), int64(len(bad)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller); !errors.Is(err, ErrCorrupt) ||
					!strings.Contains(err.Error(), "the only data block gives") {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			tr, err := Open(bytes.NewReader(bad), int64(len(bad)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			lastBlock := uint64(c.blocks - 1)
			var ce *CorruptionError
			err = tr.VerifyData()
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Block != lastBlock {
				t.Fatalf("VerifyData: %v, want corruption of block %d", err, lastBlock)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("data block %d (offset %d) is corrupt: hash tree says %x, block hashes to %x", lastBlock, lastBlock*uint64(c.dbs), ce.Want, ce.Got)) {
				t.Errorf("message: %v", err)
			}
			buf := make([]byte, 10)
			if _, err := tr.ReadAt(buf, int64(at)); !errors.As(err, &ce) || ce.Block != lastBlock {
				t.Errorf("ReadAt of the tampered block: %v", err)
			}
			if c.blocks > 1 {
				if _, err := tr.ReadAt(buf, 0); err != nil {
					t.Errorf("ReadAt of an intact block: %v", err)
				}
			}
		})
	}
}

// TestTamperedDataLowestBlock: VerifyData hashes ranges side by side; with several blocks
// changed in different ranges it still reports the lowest one, whatever the timing.
func TestTamperedDataLowestBlock(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const blocks = 4 * 512 // 8 MiB of 4 KiB blocks: four ranges of 2 MiB
	data := randomBytes(t, blocks*4096)
	dev, root := formatTree(t, data, 4096, 4096, randomBytes(t, 32))
	for _, bad := range [][]int{{3 * 512 * 4096}, {2*512*4096 + 5, blocks*4096 - 1}, {600 * 4096, 1500 * 4096, 10}} {
		changed := data
		for _, at := range bad {
			changed = flip(changed, at)
		}
		want := uint64(slices.Min(bad) / 4096)
		for range 5 {
			tr, err := Open(bytes.NewReader(changed), int64(len(changed)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			var ce *CorruptionError
			if err := tr.VerifyData(); !errors.As(err, &ce) || ce.Block != want {
				t.Fatalf("changed bytes at %v: VerifyData: %v, want corruption of block %d", bad, err, want)
			}
		}
	}
}

// TestTamperedHashTree: a flipped bit anywhere in the hash tree, padding included, fails Open.
func TestTamperedHashTree(t *testing.T) {
	for _, c := range []treeCase{{300, 4096, 4096}, {257, 512, 512}, {2, 4096, 4096}} {
		t.Run(c.String(), func(t *testing.T) {
			data := randomBytes(t, c.blocks*int(c.dbs))
			dev, root := formatTree(t, data, c.dbs, c.hbs, randomBytes(t, 32))
			off := int((SuperblockSize + c.hbs - 1) / c.hbs * c.hbs)
			// The top block, an entry in the middle, the last byte (leaf-level padding).
			for _, at := range []int{off, off + 33, (off + len(dev)) / 2, len(dev) - 1} {
				bad := flip(dev, at)
				_, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(bad), int64(len(bad)), root, SourceSignature)
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("bit flipped at %d of the hash device: Open = %v, want ErrCorrupt", at, err)
				}
			}
		})
	}
}

func TestRootHashMismatchMessage(t *testing.T) {
	data := randomBytes(t, 4*4096)
	salt := randomBytes(t, 32)
	dev, root := formatTree(t, data, 4096, 4096, salt)
	wrong := flip(root, 0)
	_, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)), wrong, SourceSignature)
	want := fmt.Sprintf("root hash mismatch: the signature covers %x, the hash partition gives %x", wrong, root)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open = %v\nwant it to say %q", err, want)
	}
	// A changed salt changes every hash: the superblock is covered that way.
	bad := bytes.Clone(dev)
	bad[88] ^= 1
	if _, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(bad), int64(len(bad)), root, SourceUUIDs); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "the partition UUIDs give") {
		t.Fatalf("salt flipped: Open = %v", err)
	}
}

func TestSuperblock(t *testing.T) {
	salt := bytes.Repeat([]byte{0xab}, 32)
	good := superblockBytes(1, 1, "sha256", 4096, 4096, 20480, salt)
	p, err := ParseSuperblock(good)
	if err != nil {
		t.Fatal(err)
	}
	if p.HashType != 1 || p.Algorithm != "sha256" || p.DataBlockSize != 4096 || p.HashBlockSize != 4096 || p.DataBlocks != 20480 ||
		!bytes.Equal(p.Salt, salt) || p.HashOffset != 4096 || p.UUIDString() != "6b17df78-9161-48a4-9f4f-3cc7e070e5ae" || p.DataSize() != 20480*4096 {
		t.Fatalf("parsed %+v", p)
	}
	if p, err := ParseSuperblock(superblockBytes(1, 1, "SHA256", 512, 512, 1, nil)); err != nil || p.HashOffset != 512 || len(p.Salt) != 0 {
		t.Fatalf("512-byte blocks, no salt: %+v, %v", p, err)
	}

	bad := func(mod func(b []byte)) []byte { b := bytes.Clone(good); mod(b); return b }
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", good[:511], "511 bytes, want 512"},
		{"magic", bad(func(b []byte) { b[0] = 'V' }), `magic "Verity\x00\x00"`},
		{"version 2", superblockBytes(2, 1, "sha256", 4096, 4096, 1, salt), "version 2, this tool reads version 1"},
		{"chrome os", superblockBytes(1, 0, "sha256", 4096, 4096, 1, salt), "hash type 0 (Chrome OS format) is not supported"},
		{"hash type 7", superblockBytes(1, 7, "sha256", 4096, 4096, 1, salt), "hash type 7 is not supported"},
		{"sha512", superblockBytes(1, 1, "sha512", 4096, 4096, 1, salt), `hash algorithm "sha512" is not supported, only sha256`},
		{"sha1", superblockBytes(1, 1, "sha1", 4096, 4096, 1, salt), `hash algorithm "sha1" is not supported`},
		{"data block 333", superblockBytes(1, 1, "sha256", 333, 4096, 1, salt), "data block size 333: want a power of two from 512 to 65536"},
		{"hash block 256", superblockBytes(1, 1, "sha256", 4096, 256, 1, salt), "hash block size 256"},
		{"hash block 1M", superblockBytes(1, 1, "sha256", 4096, 1<<20, 1, salt), "hash block size 1048576"},
		{"salt 257", bad(func(b []byte) { b[80], b[81] = 1, 1 }), "salt size 257, at most 256"},
		{"no blocks", superblockBytes(1, 1, "sha256", 4096, 4096, 0, salt), "data blocks 0"},
		{"overflow", superblockBytes(1, 1, "sha256", 4096, 4096, 1<<62, salt), "overflow 64 bits"},
	} {
		if _, err := ParseSuperblock(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := ReadSuperblock(bytes.NewReader(good[:100])); err == nil || !strings.Contains(err.Error(), "shorter than 512") {
		t.Errorf("short device: %v", err)
	}
}

func TestOpenSizeChecks(t *testing.T) {
	data := randomBytes(t, 300*4096)
	dev, root := formatTree(t, data, 4096, 4096, nil)
	if _, err := Open(bytes.NewReader(data), int64(len(data)-1), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("data partition: %d bytes, the hash tree covers 300 blocks of 4096 bytes = %d", len(data)-1, len(data))) {
		t.Errorf("short data partition: %v", err)
	}
	if _, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)-1), root, SourceCaller); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("hash partition: %d bytes, the hash tree for 300 data blocks ends at %d", len(dev)-1, len(dev))) {
		t.Errorf("short hash partition: %v", err)
	}
	if _, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)), root[:20], SourceSignature); err == nil ||
		!strings.Contains(err.Error(), "root hash from the signature: 20 bytes, want 32") {
		t.Errorf("short root hash: %v", err)
	}
	// A data partition larger than the tree's coverage is fine; the tail is not readable.
	big := append(bytes.Clone(data), make([]byte, 8192)...)
	tr, err := Open(bytes.NewReader(big), int64(len(big)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller)
	if err != nil || tr.Size() != int64(len(data)) {
		t.Fatalf("larger data partition: %v", err)
	}
}

// TestOpenParamsNoSuperblock reads a tree written with --no-superblock, given its parameters.
func TestOpenParamsNoSuperblock(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(t, 50*4096)
	dataPath := writeFile(t, dir, "data", data)
	salt := randomBytes(t, 32)
	hashPath, root := veritysetupFormat(t, dataPath, "--no-superblock", fmt.Sprintf("--salt=%x", salt))
	dev := readFile(t, hashPath)
	p := Params{HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 50, Salt: salt}
	tr, err := OpenParams(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)), p, root, SourceCaller)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.VerifyData(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(bytes.NewReader(data), int64(len(data)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller); err == nil || !strings.Contains(err.Error(), "--no-superblock") {
		t.Errorf("Open without a superblock: %v", err)
	}
}

// eofReader returns io.EOF with every read that reaches the end, full or not, as io.ReaderAt
// allows.
type eofReader struct{ b []byte }

func (r eofReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if off+int64(n) == int64(len(r.b)) {
		return n, io.EOF
	}
	return n, nil
}

func TestReadersAtTheEnd(t *testing.T) {
	data := randomBytes(t, 20*512)
	dev, root := formatTree(t, data, 512, 512, []byte("s"))
	tr, err := Open(eofReader{data}, int64(len(data)), eofReader{dev}, int64(len(dev)), root, SourceCaller)
	if err != nil {
		t.Fatalf("io.EOF with a full read: %v", err)
	}
	if err := tr.VerifyData(); err != nil {
		t.Fatalf("io.EOF with a full read: %v", err)
	}
	// The caller claims more data than there is: the missing block is an error, not zeros.
	tr, err = Open(eofReader{data[:len(data)-1]}, int64(len(data)), eofReader{dev}, int64(len(dev)), root, SourceCaller)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.VerifyData(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short data: VerifyData = %v", err)
	}
	if _, err := tr.ReadAt(make([]byte, 10), int64(len(data)-10)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short data: ReadAt = %v", err)
	}
	if _, err := Open(eofReader{data}, int64(len(data)), eofReader{dev[:len(dev)-1]}, int64(len(dev)), root, SourceCaller); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short hash device: %v", err)
	}
}
