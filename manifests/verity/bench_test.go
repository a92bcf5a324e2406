package verity

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests/erofs"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// The benchmarks compare the two ways of trusting a ~64 MiB erofs image: hashing all of it
// (VerifyData, what `veritysetup verify` does) against opening the tree and reading only the
// firmware files through it, as the tool reads an image. Run with `make bench` or
// `go test -run XXX -bench Tree ./manifests/verity`; figures are reported, never asserted.

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
	bench     struct {
		dataPath, hashPath string
		root               []byte
		firmware           []string
		firmwareBytes      int64
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchImage builds, once, an erofs image of 64 MiB of incompressible files among which 8
// firmware files of 32 KiB, and its hash tree (4 KiB blocks).
func benchImage(b *testing.B) {
	mkfs := testkernel.Tool(b, "mkfs.erofs")
	benchOnce.Do(func() {
		if benchDir, benchErr = os.MkdirTemp("", "verity-bench-"); benchErr != nil {
			return
		}
		tree := filepath.Join(benchDir, "tree")
		for i := 0; i < 62; i++ {
			writeFile(b, tree, fmt.Sprintf("usr/share/bulk/%02d.bin", i), randomBytes(b, 1<<20))
		}
		for i := 0; i < 8; i++ {
			p := fmt.Sprintf("usr/lib/firmware/vendor/fw%d.bin", i)
			writeFile(b, tree, p, randomBytes(b, 32<<10))
			bench.firmware = append(bench.firmware, p)
			bench.firmwareBytes += 32 << 10
		}
		bench.dataPath = filepath.Join(benchDir, "fs.erofs")
		run(b, mkfs, bench.dataPath, tree)
		data := readFile(b, bench.dataPath)
		if pad := len(data) % 4096; pad != 0 {
			data = append(data, make([]byte, 4096-pad)...)
			writeFile(b, benchDir, "fs.erofs", data)
		}
		dev, root := formatTree(b, data, 4096, 4096, randomBytes(b, 32))
		bench.hashPath = writeFile(b, benchDir, "fs.verity", dev)
		bench.root = root
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
}

// countingReader counts the bytes read from the data partition.
type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func openBench(b *testing.B) (data *countingReader, dataSize int64, hash *os.File, hashSize int64) {
	df, err := os.Open(bench.dataPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { df.Close() })
	hf, err := os.Open(bench.hashPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hf.Close() })
	ds, _ := df.Stat()
	hs, _ := hf.Stat()
	return &countingReader{r: df}, ds.Size(), hf, hs.Size()
}

func readBenchFirmware(b *testing.B, r io.ReaderAt, size int64) {
	fsys, err := erofs.Open(r, size)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range bench.firmware {
		got, err := fs.ReadFile(fsys, p)
		if err != nil || len(got) != 32<<10 {
			b.Fatalf("%s: %d bytes, %v", p, len(got), err)
		}
	}
}

// BenchmarkTreeOpen64MiB: superblock and hash tree (516 KiB) verified, no data read.
func BenchmarkTreeOpen64MiB(b *testing.B) {
	benchImage(b)
	data, ds, hash, hs := openBench(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Open(data, ds, hash, hs, bench.root, SourceCaller); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTreeVerifyData64MiB: the eager design, every data block hashed.
func BenchmarkTreeVerifyData64MiB(b *testing.B) {
	benchImage(b)
	data, ds, hash, hs := openBench(b)
	b.SetBytes(ds)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := Open(data, ds, hash, hs, bench.root, SourceCaller)
		if err != nil {
			b.Fatal(err)
		}
		if err := t.VerifyData(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(data.n.Load())/float64(b.N), "data-bytes/op")
}

// BenchmarkTreeReadFirmware64MiB: the lazy design, the tree verified and the firmware files
// (8 × 32 KiB) read through it, so only the blocks erofs touches are hashed.
func BenchmarkTreeReadFirmware64MiB(b *testing.B) {
	benchImage(b)
	data, ds, hash, hs := openBench(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t, err := Open(data, ds, hash, hs, bench.root, SourceCaller)
		if err != nil {
			b.Fatal(err)
		}
		readBenchFirmware(b, t, t.Size())
	}
	b.ReportMetric(float64(data.n.Load())/float64(b.N), "data-bytes/op")
}

// BenchmarkPlainReadFirmware64MiB: the same reads without verity, for comparison.
func BenchmarkPlainReadFirmware64MiB(b *testing.B) {
	benchImage(b)
	data, ds, _, _ := openBench(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		readBenchFirmware(b, data, ds)
	}
	b.ReportMetric(float64(data.n.Load())/float64(b.N), "data-bytes/op")
}

// TestLazyReadTouchesOnlyItsBlocks: a read through the tree reads (and hashes) the data blocks
// it overlaps and no others, which is what makes the lazy design cheap.
func TestLazyReadTouchesOnlyItsBlocks(t *testing.T) {
	data := randomBytes(t, 64*4096)
	dev, root := formatTree(t, data, 4096, 4096, nil)
	c := &countingReader{r: bytes.NewReader(data)}
	tr, err := Open(c, int64(len(data)), bytes.NewReader(dev), int64(len(dev)), root, SourceCaller)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		off, n int
		want   int64
	}{{5*4096 + 100, 10, 4096}, {4096 - 1, 2, 2 * 4096}, {0, 3 * 4096, 3 * 4096}} {
		c.n.Store(0)
		if _, err := tr.ReadAt(make([]byte, r.n), int64(r.off)); err != nil {
			t.Fatal(err)
		}
		if c.n.Load() != r.want {
			t.Errorf("%d bytes at %d read %d data bytes, want %d", r.n, r.off, c.n.Load(), r.want)
		}
	}
}
