package erofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz/lzma"

	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// FuzzErofs feeds corrupt images to the superblock, inode, directory, xattr and data
// parsers: they may fail, never panic, hang or allocate without bound.
func FuzzErofs(f *testing.F) {
	// a synthetic superblock-only image, always available
	synth := make([]byte, 8192)
	binary.LittleEndian.PutUint32(synth[SuperOffset:], SuperMagic)
	synth[SuperOffset+12] = 12
	f.Add(synth)
	if _, err := exec.LookPath("mkfs.erofs"); err == nil {
		src := f.TempDir()
		imagetest.WriteTree(f, src, map[string]string{
			"a":         "hello",
			"d/big":     string(bytes.Repeat([]byte("0123456789abcdef"), 2000)),
			"d/link":    "->../a",
			"d/e/empty": "",
		})
		for i, opts := range [][]string{nil, {"-zlz4"}, {"-zlz4hc", "-C16384"}, {"-zlz4", "-Eztailpacking"}, {"--chunksize=4096"}, {"-zlz4", "-Elegacy-compress"}} {
			img := filepath.Join(f.TempDir(), fmt.Sprint(i))
			imagetest.Erofs(f, img, src, opts...)
			b, err := os.ReadFile(img)
			if err != nil {
				f.Fatal(err)
			}
			// the checksum would reject nearly every mutation of the superblock: turn it off
			binary.LittleEndian.PutUint32(b[SuperOffset+8:], binary.LittleEndian.Uint32(b[SuperOffset+8:])&^compatSBChecksum)
			f.Add(b)
		}
	}
	// lzma, deflate, zstd, fragments and dedupe from erofs-utils 1.8.6, when make fixtures built it
	for _, b := range mkfs18Seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		budget := 200 // entries visited
		_ = fs.WalkDir(e, ".", func(p string, d fs.DirEntry, err error) error {
			if budget--; budget < 0 {
				return fs.SkipAll
			}
			if err != nil {
				return nil
			}
			_, _ = e.Lstat(p)
			_, _ = e.Getxattr(p, "user.extension-release.strict")
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				_, _ = e.ReadLink(p)
			case d.Type().IsRegular():
				fl, err := e.Open(p)
				if err == nil {
					_, _ = io.CopyN(io.Discard, fl, 1<<20)
					fl.Close()
				}
			}
			return nil
		})
	})
}

// BenchmarkRead4000 opens a 4,000-file lz4 erofs image, walks it and reads every file.
func BenchmarkRead4000(b *testing.B) {
	src := b.TempDir()
	files := map[string]string{}
	for i := 0; i < 4000; i++ {
		files[fmt.Sprintf("usr/lib/firmware/vendor%02d/fw-%04d.bin", i%40, i)] = fmt.Sprintf("%0512d", i)
	}
	imagetest.WriteTree(b, src, files)
	img := filepath.Join(b.TempDir(), "fw.erofs")
	imagetest.Erofs(b, img, src, "-zlz4hc")
	fh, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	b.ResetTimer()
	for b.Loop() {
		e, err := Open(fh, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		err = fs.WalkDir(e, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := e.ReadFile(p)
			if len(data) != 512 {
				return fmt.Errorf("%s: %d bytes, %v", p, len(data), err)
			}
			n++
			return err
		})
		if err != nil || n != 4000 {
			b.Fatalf("read %d files: %v", n, err)
		}
	}
}

// FuzzMicroLZMA checks the MicroLZMA decoder (microlzma.go) against github.com/ulikunitz/xz's
// classic LZMA reader: never a panic; where both decode a stream into n bytes, the same bytes;
// and a partial decode is a prefix of the full one.
func FuzzMicroLZMA(f *testing.F) {
	for _, s := range []string{"", "a", strings.Repeat("microlzma ", 300), strings.Repeat("ab", 5000) + "the end"} {
		micro, err := testMicroLZMA([]byte(s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(micro, uint16(len(s)), uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, micro []byte, n, m uint16) {
		got, err := decodeMicroLZMA(micro, int(n), false)
		if len(micro) >= 5 {
			// .lzma: properties, dictionary size, size, then the range coder with its 0 back
			classic := binary.LittleEndian.AppendUint32([]byte{^micro[0]}, uint32(max(n, 4096)))
			classic = binary.LittleEndian.AppendUint64(classic, uint64(n))
			classic = append(append(classic, 0), micro[1:]...)
			if rd, rerr := lzma.NewReader(bytes.NewReader(classic)); rerr == nil {
				want, rerr := io.ReadAll(rd)
				if err == nil && rerr == nil && !bytes.Equal(got, want) {
					t.Fatalf("decodeMicroLZMA and lzma.Reader differ on %d bytes", n)
				}
			}
		}
		if err == nil && m <= n {
			prefix, err := decodeMicroLZMA(micro, int(m), true)
			if err != nil || !bytes.Equal(prefix, got[:m]) {
				t.Fatalf("partial decode of %d of %d bytes: %v", m, n, err)
			}
		}
	})
}

// testMicroLZMA compresses data into a MicroLZMA stream: a classic .lzma stream of known size
// (no end marker) whose header is dropped and whose range coder's first byte, always zero,
// becomes the negated properties byte.
func testMicroLZMA(data []byte) ([]byte, error) {
	var classic bytes.Buffer
	w, err := lzma.WriterConfig{Size: int64(len(data)), DictCap: 1 << 16}.NewWriter(&classic)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	c := classic.Bytes()
	return append([]byte{^c[0]}, c[14:]...), nil
}
