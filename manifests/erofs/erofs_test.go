package erofs

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// fixture writes a tree exercising every data path: empty, tiny, block-sized and
// block-crossing files, compressible and random data, duplicated content, deep directories,
// a directory with many entries (several directory blocks), relative and absolute symlinks.
func fixture(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	random := func(n int) string {
		b := make([]byte, n)
		rng.Read(b)
		return string(b)
	}
	var text strings.Builder
	for i := 0; text.Len() < 200000; i++ {
		fmt.Fprintf(&text, "line %d of a compressible file %d\n", i, i*i)
	}
	files := map[string]string{
		"empty":             "",
		"one":               "x",
		"block-1":           strings.Repeat("a", 4095),
		"block":             random(4096),
		"block+1":           random(4097),
		"text":              text.String(),
		"text-copy":         text.String(),
		"random":            random(300000),
		"mixed":             text.String()[:50000] + random(20000) + text.String()[:70000],
		"zeros":             strings.Repeat("\x00", 70000),
		"a/b/c/d/e/deep":    "deep file\n",
		"link-rel":          "->a/b/c/d/e/deep",
		"a/b/link-up":       "->../../text",
		"link-abs":          "->/a/b/c",
		"dangling":          "->does/not/exist",
		"usr/lib/firmware/": "",
	}
	delete(files, "usr/lib/firmware/")
	for i := 0; i < 300; i++ {
		files[fmt.Sprintf("many/entry-with-a-long-name-%04d.bin", i)] = fmt.Sprintf("content %d", i)
	}
	imagetest.WriteTree(t, root, files)
	return root
}

type variant struct {
	name    string
	opts    []string
	layouts []uint8 // at least one file must use one of these data layouts
}

func variants(t testing.TB) []variant {
	v := []variant{
		{"uncompressed", nil, []uint8{layoutFlatInline}},
		{"extended-inodes", []string{"-Eforce-inode-extended"}, []uint8{layoutFlatInline}},
		{"no-inline", []string{"-Enoinline_data"}, []uint8{layoutFlatPlain}},
		{"chunk-4k", []string{"--chunksize=4096"}, []uint8{layoutChunkBased}},
		{"chunk-64k", []string{"--chunksize=65536"}, []uint8{layoutChunkBased}},
	}
	compressed := []uint8{layoutCompressedFull, layoutCompressedCompact}
	for _, alg := range imagetest.ErofsCompressors(t) {
		v = append(v,
			variant{alg, []string{"-z" + alg}, compressed},
			variant{alg + "-bigpcluster", []string{"-z" + alg, "-C65536"}, compressed},
			variant{alg + "-ztailpacking", []string{"-z" + alg, "-Eztailpacking"}, compressed},
			variant{alg + "-legacy", []string{"-z" + alg, "-Elegacy-compress"}, compressed},
			variant{alg + "-compact-inodes", []string{"-z" + alg, "-Eforce-inode-compact"}, compressed},
		)
	}
	return v
}

func openImage(t testing.TB, path string) *FS {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(f, st.Size())
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return e
}

// compareTree checks that the image holds exactly the tree at src.
func compareTree(t *testing.T, e *FS, src string) map[uint8]int {
	t.Helper()
	layouts := map[uint8]int{}
	want := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		want[rel] = true
		fi, err := e.Lstat(rel)
		if err != nil {
			t.Errorf("Lstat(%s): %v", rel, err)
			return nil
		}
		if fi.Mode().Type() != d.Type() {
			t.Errorf("%s: type %v, want %v", rel, fi.Mode().Type(), d.Type())
			return nil
		}
		layouts[fi.Sys().(*Stat).Layout]++
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			wantT, _ := os.Readlink(p)
			got, err := e.ReadLink(rel)
			if err != nil || got != wantT {
				t.Errorf("ReadLink(%s) = %q, %v; want %q", rel, got, err, wantT)
			}
		case d.Type().IsRegular():
			wantB, _ := os.ReadFile(p)
			got, err := e.ReadFile(rel)
			if err != nil || !bytes.Equal(got, wantB) {
				t.Errorf("ReadFile(%s): %d bytes (sha %x), %v; want %d bytes (sha %x)", rel, len(got), sha256.Sum256(got), err, len(wantB), sha256.Sum256(wantB))
			}
			if fi.Size() != int64(len(wantB)) {
				t.Errorf("%s: size %d, want %d", rel, fi.Size(), len(wantB))
			}
			// reading through Open in odd-sized chunks crosses extents at odd offsets
			f, err := e.Open(rel)
			if err != nil {
				t.Errorf("Open(%s): %v", rel, err)
				return nil
			}
			var buf bytes.Buffer
			if _, err := io.CopyBuffer(&buf, struct{ io.Reader }{f}, make([]byte, 1000)); err != nil || !bytes.Equal(buf.Bytes(), wantB) {
				t.Errorf("Open(%s)+Read: %d bytes, %v; want %d", rel, buf.Len(), err, len(wantB))
			}
		case d.IsDir():
			wantEnts, _ := os.ReadDir(p)
			got, err := e.ReadDir(rel)
			if err != nil || len(got) != len(wantEnts) {
				t.Errorf("ReadDir(%s): %d entries, %v; want %d", rel, len(got), err, len(wantEnts))
				return nil
			}
			for i := range got {
				if got[i].Name() != wantEnts[i].Name() || got[i].Type() != wantEnts[i].Type() {
					t.Errorf("ReadDir(%s)[%d] = %s %v, want %s %v", rel, i, got[i].Name(), got[i].Type(), wantEnts[i].Name(), wantEnts[i].Type())
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// nothing more in the image
	if err := fs.WalkDir(e, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !want[p] {
			t.Errorf("image has %s, the source has not", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return layouts
}

func TestImages(t *testing.T) {
	src := fixture(t)
	dir := t.TempDir()
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			img := filepath.Join(dir, v.name+".erofs")
			imagetest.Erofs(t, img, src, v.opts...)
			e := openImage(t, img)
			layouts := compareTree(t, e, src)
			used := false
			for _, l := range v.layouts {
				used = used || layouts[l] > 0
			}
			if !used {
				t.Errorf("no file uses layouts %v (layouts seen: %v): the variant tests nothing new", v.layouts, layouts)
			}
		})
	}
}

func TestLexicalPaths(t *testing.T) {
	src := fixture(t)
	img := filepath.Join(t.TempDir(), "x.erofs")
	imagetest.Erofs(t, img, src)
	e := openImage(t, img)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"link-abs/d", errNotDir},   // a symlink in the middle is not followed
		{"one/x", errNotDir},        // a file in the middle
		{"missing", fs.ErrNotExist}, // absent
		{"a/../one", fs.ErrInvalid}, // not an io/fs path
		{"/one", fs.ErrInvalid},
	} {
		if _, err := e.Lstat(tc.name); !errors.Is(err, tc.err) {
			t.Errorf("Lstat(%q) = %v, want %v", tc.name, err, tc.err)
		}
	}
	f, err := e.Open("link-rel")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read of an opened symlink succeeded")
	}
	if _, err := e.ReadLink("one"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink(regular file) = %v, want ErrInvalid", err)
	}
}

func TestXattr(t *testing.T) {
	src := fixture(t)
	target := filepath.Join(src, "one")
	if err := unix.Lsetxattr(target, "user.extension-release.strict", []byte("0"), 0); err != nil {
		t.Skipf("user xattrs unsupported on %s: %v", src, err)
	}
	if err := unix.Lsetxattr(target, "user.other", []byte(strings.Repeat("v", 300)), 0); err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]string{nil, {"-Eforce-inode-extended"}} {
		img := filepath.Join(t.TempDir(), "x.erofs")
		imagetest.Erofs(t, img, src, opts...)
		e := openImage(t, img)
		v, err := e.Getxattr("one", "user.extension-release.strict")
		if err != nil || string(v) != "0" {
			t.Errorf("%v: Getxattr = %q, %v; want \"0\"", opts, v, err)
		}
		if v, err := e.Getxattr("one", "user.other"); err != nil || len(v) != 300 {
			t.Errorf("%v: Getxattr(user.other) = %d bytes, %v; want 300", opts, len(v), err)
		}
		if _, err := e.Getxattr("one", "user.absent"); !errors.Is(err, ErrNoXattr) {
			t.Errorf("%v: Getxattr(absent) = %v, want ErrNoXattr", opts, err)
		}
		if _, err := e.Getxattr("block", "user.extension-release.strict"); !errors.Is(err, ErrNoXattr) {
			t.Errorf("%v: Getxattr on a file without xattrs = %v, want ErrNoXattr", opts, err)
		}
	}
}

func TestCorruptSuperblock(t *testing.T) {
	src := t.TempDir()
	imagetest.WriteTree(t, src, map[string]string{"f": "data"})
	img := filepath.Join(t.TempDir(), "x.erofs")
	imagetest.Erofs(t, img, src)
	good, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint32(good[SuperOffset+8:])&compatSBChecksum == 0 {
		t.Fatalf("mkfs.erofs wrote no superblock checksum; the checksum case below would test nothing")
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		img  []byte
		want error
	}{
		{"truncated", good[:SuperOffset+64], ErrCorrupt},
		{"magic", mutate(func(b []byte) []byte { b[SuperOffset] ^= 1; return b }), ErrCorrupt},
		{"checksum", mutate(func(b []byte) []byte { b[SuperOffset+16] ^= 1; return b }), ErrCorrupt},
		{"blkszbits", mutate(func(b []byte) []byte { b[SuperOffset+12] = 20; return b }), ErrCorrupt},
		{"unknown incompat", mutate(func(b []byte) []byte {
			b[SuperOffset+8] &^= compatSBChecksum // so the change is not caught by the checksum
			binary.LittleEndian.PutUint32(b[SuperOffset+80:], 1<<20)
			return b
		}), errors.ErrUnsupported},
		{"48bit", mutate(func(b []byte) []byte {
			b[SuperOffset+8] &^= compatSBChecksum
			binary.LittleEndian.PutUint32(b[SuperOffset+80:], incompat48Bit)
			return b
		}), errors.ErrUnsupported},
		{"root nid", mutate(func(b []byte) []byte {
			b[SuperOffset+8] &^= compatSBChecksum
			binary.LittleEndian.PutUint16(b[SuperOffset+14:], 0xffff)
			return b
		}), ErrCorrupt},
	} {
		_, err := Open(bytes.NewReader(tc.img), int64(len(tc.img)))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestMicroLZMA(t *testing.T) {
	want := []byte(strings.Repeat("microlzma test data, ", 2000) + "tail")
	var classic bytes.Buffer
	w, err := lzma.WriterConfig{Size: int64(len(want)), DictCap: 1 << 16}.NewWriter(&classic)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(want)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c := classic.Bytes()
	// .lzma: props, dict size (4), size (8), then the range coder, whose first byte is 0.
	if c[13] != 0 {
		t.Fatalf("range coder starts with 0x%02x, want 0", c[13])
	}
	micro := append([]byte{^c[0]}, c[14:]...)
	got, err := decodeMicroLZMA(micro, len(want), false)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("decodeMicroLZMA: %d bytes, %v", len(got), err)
	}
	// a prefix (partial decoding) of the same stream
	got, err = decodeMicroLZMA(micro, 1000, true)
	if err != nil || !bytes.Equal(got, want[:1000]) {
		t.Fatalf("decodeMicroLZMA prefix: %d bytes, %v", len(got), err)
	}
	// a full extent must be the whole stream
	if _, err := decodeMicroLZMA(micro, 1000, false); err == nil {
		t.Errorf("decoding a prefix as a full extent succeeded")
	}
	if _, err := decodeMicroLZMA([]byte{0, 1, 2}, 10, false); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad properties byte: %v, want ErrCorrupt", err)
	}
}

func TestDecompressAlgorithms(t *testing.T) {
	want := []byte(strings.Repeat("firmware blob ", 3000))
	sb := &Superblock{BlkSzBits: 12, FeatureIncompat: incompatLZ40Padding}
	pad := func(b []byte) []byte { return append(make([]byte, 4096-len(b)%4096), b...) }

	var lz4Block = make([]byte, lz4.CompressBlockBound(len(want)))
	n, err := lz4.CompressBlock(want, lz4Block, nil)
	if err != nil || n == 0 {
		t.Fatalf("lz4 compress: %d, %v", n, err)
	}
	var def bytes.Buffer
	fw, _ := flate.NewWriter(&def, 9)
	fw.Write(want)
	fw.Close()
	zw, _ := zstd.NewWriter(nil)
	zs := zw.EncodeAll(want, nil)

	for _, tc := range []struct {
		name string
		alg  int
		raw  []byte
	}{
		{"lz4", AlgLZ4, pad(lz4Block[:n])},
		{"deflate", AlgDeflate, pad(def.Bytes())},
		{"zstd", AlgZstd, pad(zs)},
	} {
		for _, partial := range []bool{false, true} {
			size := len(want)
			if partial {
				size = 5000
			}
			got, err := decompress(tc.alg, tc.raw, size, partial, sb, 0)
			if err != nil || !bytes.Equal(got, want[:size]) {
				t.Errorf("%s partial=%v: %d bytes, %v", tc.name, partial, len(got), err)
			}
		}
		// a full extent that claims more data than the stream holds is corrupt
		if _, err := decompress(tc.alg, tc.raw, len(want)+1, false, sb, 0); err == nil {
			t.Errorf("%s: decoding %d bytes from a %d-byte stream succeeded", tc.name, len(want)+1, len(want))
		}
	}
	// plain pclusters: shifted keeps the start, interlaced rotates by the logical offset
	raw := []byte("0123456789abcdef")
	sb4k := &Superblock{BlkSzBits: 4}
	if got, err := decompress(algShifted, raw, 10, false, sb4k, 0); err != nil || string(got) != "0123456789" {
		t.Errorf("shifted = %q, %v", got, err)
	}
	if got, err := decompress(algInterlaced, raw, 16, false, sb4k, 16*3+4); err != nil || string(got) != "456789abcdef0123" {
		t.Errorf("interlaced = %q, %v", got, err)
	}
}

func TestLZ4Partial(t *testing.T) {
	want := []byte(strings.Repeat("abcdefgh", 1000) + "the end")
	block := make([]byte, lz4.CompressBlockBound(len(want)))
	n, _ := lz4.CompressBlock(want, block, nil)
	block = block[:n]
	for _, size := range []int{1, 7, 100, 4096, len(want)} {
		out := make([]byte, size)
		got, err := lz4Partial(append(bytes.Clone(block), "garbage after the block"...), out)
		if err != nil || got != size || !bytes.Equal(out, want[:size]) {
			t.Errorf("size %d: %d, %v", size, got, err)
		}
	}
	if _, err := lz4Partial(block[:n/2], make([]byte, len(want))); err == nil {
		t.Errorf("truncated block decoded without error")
	}
	if _, err := lz4Partial([]byte{0x0f, 0x01, 0x00, 0x00}, make([]byte, 100)); err == nil {
		t.Errorf("match before any output decoded without error")
	}
}
