package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// mksquashfs builds an image of src at dst with the system's mksquashfs and extra options.
func mksquashfs(t testing.TB, dst, src string, opts ...string) {
	t.Helper()
	tool := imagetest.Tool(t, "mksquashfs", "squashfs-tools")
	args := append([]string{src, dst, "-noappend", "-quiet", "-no-progress", "-all-root"}, opts...)
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
	}
}

// pseudo adds what a tree cannot hold without root: devices and a socket, under pseudo/.
var pseudo = []string{
	"-p", "pseudo d 755 root root",
	"-p", "pseudo/null c 666 root root 1 3",
	"-p", "pseudo/sda b 660 root root 8 0",
	"-p", "pseudo/sock i 755 root root s",
}

// fixture writes a tree exercising every data path: empty files, files of exactly one block
// (4 KiB, 128 KiB and 1 MiB: the block sizes the variants use), block-crossing files,
// compressible and random data, a big random file of many blocks, sparse files, a hard link,
// deep and empty directories, a directory of 300 entries (several directory headers and an
// extended directory with an index), relative, absolute and dangling symlinks, a fifo, and
// unusual modes.
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
		"empty":          "",
		"one":            "x",
		"block-4k":       random(4096),
		"block-4k+1":     random(4097),
		"block-128k":     random(128 << 10),
		"block-1m":       random(1 << 20),
		"text":           text.String(),
		"text-copy":      text.String(),
		"big":            random(3<<19 + 12345),
		"mixed":          text.String()[:50000] + random(20000) + text.String()[:70000],
		"zeros":          strings.Repeat("\x00", 100000),
		"a/b/c/d/e/deep": "deep file\n",
		"a/empty-too":    "",
		"link-rel":       "->a/b/c/d/e/deep",
		"a/b/link-up":    "->../../text",
		"link-abs":       "->/a/b/c",
		"dangling":       "->does/not/exist",
		"link-long":      "->" + strings.Repeat("long/", 200) + "end",
	}
	for i := 0; i < 300; i++ {
		files[fmt.Sprintf("many/entry-with-a-long-name-%04d.bin", i)] = fmt.Sprintf("content %d", i)
	}
	imagetest.WriteTree(t, root, files)
	for _, d := range []string{"emptydir", "a/b/empty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	// sparse: a hole only, and data around a hole of many blocks
	hole, err := os.Create(filepath.Join(root, "sparse-hole"))
	if err != nil {
		t.Fatal(err)
	}
	hole.Truncate(2<<20 + 7)
	hole.Close()
	mid, err := os.Create(filepath.Join(root, "sparse-mid"))
	if err != nil {
		t.Fatal(err)
	}
	mid.WriteString("head")
	mid.WriteAt([]byte(random(5000)), 700<<10)
	mid.Truncate(3<<19 + 3)
	mid.Close()
	if err := os.Link(filepath.Join(root, "one"), filepath.Join(root, "a/hardlink")); err != nil {
		t.Fatal(err)
	}
	for p, m := range map[string]os.FileMode{"block-4k": 0o600, "mixed": 0o755 | os.ModeSetuid, "a/b": 0o700, "emptydir": 0o777 | os.ModeSticky} {
		if err := os.Chmod(filepath.Join(root, p), m); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

type variant struct {
	name  string
	opts  []string
	check func(t *testing.T, f *FS, s stats)
}

// stats counts what an image used: inode types, files with fragments.
type stats struct {
	types     map[uint16]int
	fragments int
}

func compressor(id uint16) func(t *testing.T, f *FS, s stats) {
	return func(t *testing.T, f *FS, s stats) {
		if c := f.Superblock().Compression; c != id {
			t.Errorf("compressor %s, want %s", CompressorName(c), CompressorName(id))
		}
	}
}

func variants(t testing.TB) []variant {
	ids := map[string]uint16{"gzip": Gzip, "lzma": LZMA, "lzo": LZO, "xz": XZ, "lz4": LZ4, "zstd": Zstd}
	var v []variant
	for _, alg := range imagetest.SquashfsCompressors(t) {
		id, ok := ids[alg]
		if !ok {
			t.Fatalf("mksquashfs offers compressor %q this test does not know", alg)
		}
		v = append(v, variant{alg, []string{"-comp", alg}, compressor(id)})
	}
	if len(v) == 0 {
		t.Fatalf("mksquashfs lists no compressors")
	}
	withFlags := func(flags uint16, rest func(t *testing.T, f *FS, s stats)) func(t *testing.T, f *FS, s stats) {
		return func(t *testing.T, f *FS, s stats) {
			if got := f.Superblock().Flags; got&flags != flags {
				t.Errorf("superblock flags 0x%x lack 0x%x", got, flags)
			}
			if rest != nil {
				rest(t, f, s)
			}
		}
	}
	fragments := func(want bool) func(t *testing.T, f *FS, s stats) {
		return func(t *testing.T, f *FS, s stats) {
			if (s.fragments > 0) != want {
				t.Errorf("%d files use fragments, want some: %v", s.fragments, want)
			}
		}
	}
	return append(v,
		variant{"lz4-hc", []string{"-comp", "lz4", "-Xhc"}, withFlags(flagCompOpts, compressor(LZ4))},
		variant{"xz-bcj-dict", []string{"-comp", "xz", "-Xbcj", "x86", "-Xdict-size", "50%"}, withFlags(flagCompOpts, func(t *testing.T, f *FS, s stats) {
			if d := f.Superblock().XZDictSize; d != 64<<10 {
				t.Errorf("xz dictionary size %d, want %d", d, 64<<10)
			}
		})},
		variant{"gzip-level1", []string{"-comp", "gzip", "-Xcompression-level", "1"}, withFlags(flagCompOpts, nil)},
		variant{"uncompressed", []string{"-noI", "-noD", "-noF", "-noX"}, withFlags(1<<0|1<<1|1<<3, nil)},
		variant{"no-fragments", []string{"-no-fragments"}, fragments(false)},
		variant{"always-use-fragments", []string{"-always-use-fragments"}, fragments(true)},
		variant{"tailends", []string{"-comp", "lz4", "-tailends"}, fragments(true)},
		variant{"no-sparse", []string{"-no-sparse", "-comp", "zstd"}, nil},
		variant{"block-4k", []string{"-b", "4096"}, nil},
		variant{"block-4k-lz4", []string{"-b", "4096", "-comp", "lz4"}, nil},
		variant{"block-1m-zstd", []string{"-b", "1M", "-comp", "zstd"}, nil},
		variant{"block-1m-xz", []string{"-b", "1M", "-comp", "xz"}, nil},
		variant{"no-duplicates-no-exports", []string{"-no-duplicates", "-no-exports", "-comp", "lzo"}, nil},
	)
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

// compareTree checks that the image holds exactly the tree at src (plus pseudo/).
func compareTree(t *testing.T, e *FS, src string) stats {
	t.Helper()
	s := stats{types: map[uint16]int{}}
	checkTimes := os.Getenv("SOURCE_DATE_EPOCH") == "" // mksquashfs would clamp them
	want := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		want[rel] = true
		osfi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fi, err := e.Lstat(rel)
		if err != nil {
			t.Errorf("Lstat(%s): %v", rel, err)
			return nil
		}
		st := fi.Sys().(*Stat)
		s.types[st.Type]++
		if st.Fragment {
			s.fragments++
		}
		if fi.Mode() != osfi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode(), osfi.Mode())
		}
		if checkTimes && !fi.ModTime().Equal(osfi.ModTime().Truncate(1e9)) {
			t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), osfi.ModTime())
		}
		if rel != "." && fi.Name() != d.Name() {
			t.Errorf("%s: Name() = %q", rel, fi.Name())
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			wantT, _ := os.Readlink(p)
			got, err := e.ReadLink(rel)
			if err != nil || got != wantT {
				t.Errorf("ReadLink(%s) = %q, %v; want %q", rel, got, err, wantT)
			}
			if fi.Size() != int64(len(wantT)) {
				t.Errorf("%s: size %d, want %d", rel, fi.Size(), len(wantT))
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
			// reading through Open in odd-sized chunks crosses blocks at odd offsets
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
			if err != nil || len(got) != len(wantEnts)+boolInt(rel == ".") {
				t.Errorf("ReadDir(%s): %d entries, %v; want %d", rel, len(got), err, len(wantEnts))
				return nil
			}
			if rel == "." { // pseudo/ comes from -p definitions
				got = slicesDelete(got, "pseudo")
			}
			for i := range got {
				if got[i].Name() != wantEnts[i].Name() || got[i].Type() != wantEnts[i].Type() {
					t.Errorf("ReadDir(%s)[%d] = %s %v, want %s %v", rel, i, got[i].Name(), got[i].Type(), wantEnts[i].Name(), wantEnts[i].Type())
				}
			}
		default: // the fifo
			f, err := e.Open(rel)
			if err != nil {
				t.Errorf("Open(%s): %v", rel, err)
				return nil
			}
			if _, err := f.Read(make([]byte, 1)); err == nil {
				t.Errorf("Read of %s (%v) succeeded", rel, fi.Mode())
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
		if !want[p] && p != "pseudo" && !strings.HasPrefix(p, "pseudo/") {
			t.Errorf("image has %s, the source has not", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	comparePseudo(t, e)
	return s
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func slicesDelete(ents []fs.DirEntry, name string) []fs.DirEntry {
	var out []fs.DirEntry
	for _, e := range ents {
		if e.Name() != name {
			out = append(out, e)
		}
	}
	return out
}

// comparePseudo checks the devices and the socket that the pseudo definitions add.
func comparePseudo(t *testing.T, e *FS) {
	t.Helper()
	for _, tc := range []struct {
		name string
		mode fs.FileMode
		rdev uint32
	}{
		{"pseudo/null", fs.ModeDevice | fs.ModeCharDevice | 0o666, 1<<8 | 3},
		{"pseudo/sda", fs.ModeDevice | 0o660, 8 << 8},
		{"pseudo/sock", fs.ModeSocket | 0o755, 0},
	} {
		fi, err := e.Lstat(tc.name)
		if err != nil {
			t.Errorf("Lstat(%s): %v", tc.name, err)
			continue
		}
		if fi.Mode() != tc.mode || fi.Sys().(*Stat).Rdev != tc.rdev {
			t.Errorf("%s: mode %v rdev 0x%x, want %v 0x%x", tc.name, fi.Mode(), fi.Sys().(*Stat).Rdev, tc.mode, tc.rdev)
		}
		f, err := e.Open(tc.name)
		if err != nil {
			t.Errorf("Open(%s): %v", tc.name, err)
			continue
		}
		if _, err := f.Read(make([]byte, 1)); err == nil {
			t.Errorf("Read of %s succeeded", tc.name)
		}
	}
	ents, err := e.ReadDir("pseudo")
	if err != nil || len(ents) != 3 || ents[0].Type() != fs.ModeDevice|fs.ModeCharDevice || ents[1].Type() != fs.ModeDevice || ents[2].Type() != fs.ModeSocket {
		t.Errorf("ReadDir(pseudo) = %v, %v", ents, err)
	}
}

func TestImages(t *testing.T) {
	src := fixture(t)
	dir := t.TempDir()
	for _, v := range variants(t) {
		t.Run(v.name, func(t *testing.T) {
			img := filepath.Join(dir, v.name+".squashfs")
			mksquashfs(t, img, src, append(v.opts, pseudo...)...)
			e := openImage(t, img)
			s := compareTree(t, e, src)
			// the extended inodes: a directory with an index (many/), files with sparse
			// blocks or a hard link
			for _, typ := range []uint16{typeDir + typeExt, typeReg + typeExt, typeDir, typeReg, typeSymlink, typeFifo} {
				if s.types[typ] == 0 {
					t.Errorf("no inode of type %d (types seen: %v)", typ, s.types)
				}
			}
			if v.check != nil {
				v.check(t, e, s)
			}
		})
	}
}

// TestConcurrent reads every file of one image from several goroutines at once (run with
// -race): the caches are shared.
func TestConcurrent(t *testing.T) {
	src := fixture(t)
	img := filepath.Join(t.TempDir(), "x.squashfs")
	mksquashfs(t, img, src, "-comp", "lz4", "-b", "4096", "-always-use-fragments")
	e := openImage(t, img)
	var files []string
	fs.WalkDir(e, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := range files {
				p := files[(i*7+g*13)%len(files)]
				got, err := e.ReadFile(p)
				want, _ := os.ReadFile(filepath.Join(src, p))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("goroutine %d: ReadFile(%s): %d bytes, %v; want %d", g, p, len(got), err, len(want))
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestLexicalPaths(t *testing.T) {
	src := fixture(t)
	img := filepath.Join(t.TempDir(), "x.squashfs")
	mksquashfs(t, img, src)
	e := openImage(t, img)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"link-abs/d", errNotDir},   // a symlink in the middle is not followed
		{"one/x", errNotDir},        // a file in the middle
		{"missing", fs.ErrNotExist}, // absent
		{"a/missing", fs.ErrNotExist},
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
	if _, err := e.ReadFile("a"); err == nil {
		t.Errorf("ReadFile(directory) succeeded")
	}
	// ReadDir through an open directory, in pieces
	d, err := e.Open("many")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		ents, err := d.(fs.ReadDirFile).ReadDir(7)
		n += len(ents)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != 300 {
		t.Errorf("ReadDir(7) loop saw %d entries, want 300", n)
	}
	// Seek and ReadAt
	fl, err := e.Open("big")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(src, "big"))
	if _, err := fl.(io.Seeker).Seek(-100, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(fl); err != nil || !bytes.Equal(got, want[len(want)-100:]) {
		t.Errorf("read after Seek(-100, end): %d bytes, %v", len(got), err)
	}
	buf := make([]byte, 200000)
	if n, err := fl.(io.ReaderAt).ReadAt(buf, 1<<20-7); err != nil || n != len(buf) || !bytes.Equal(buf, want[1<<20-7:1<<20-7+len(buf)]) {
		t.Errorf("ReadAt: %d, %v", n, err)
	}
}

// TestFSConformance runs testing/fstest on an image of regular files and directories (this FS
// does not follow symlinks, and fstest reads every non-directory).
func TestFSConformance(t *testing.T) {
	src := t.TempDir()
	imagetest.WriteTree(t, src, map[string]string{
		"empty": "", "one": "1", "d/e/f": "deep", "d/big": strings.Repeat("0123456789", 50000),
		"d/g": strings.Repeat("g", 4096),
	})
	for _, opts := range [][]string{{"-comp", "lz4"}, {"-b", "4096", "-always-use-fragments"}} {
		img := filepath.Join(t.TempDir(), "x.squashfs")
		mksquashfs(t, img, src, opts...)
		if err := fstest.TestFS(openImage(t, img), "empty", "one", "d/e/f", "d/big", "d/g"); err != nil {
			t.Errorf("%v: %v", opts, err)
		}
	}
}

// smallImage builds a small image with an uncompressed inode table (4 KiB blocks: g has a
// data block and a fragment) for the corruption tests.
func smallImage(t *testing.T, opts ...string) (img []byte, e *FS) {
	t.Helper()
	src := t.TempDir()
	imagetest.WriteTree(t, src, map[string]string{"a/f": "data", "g": strings.Repeat("g", 5000)})
	p := filepath.Join(t.TempDir(), "x.squashfs")
	mksquashfs(t, p, src, append([]string{"-noI", "-b", "4096"}, opts...)...)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err = Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return b, e
}

// inodePos is where the inode of name starts in an image with an uncompressed inode table
// that fits in one metadata block.
func inodePos(t *testing.T, e *FS, name string) int {
	t.Helper()
	fi, err := e.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	ref := fi.Sys().(*Stat).Ref
	if ref>>16 != 0 {
		t.Fatalf("%s: inode in metadata block %d, the test expects one block", name, ref>>16)
	}
	return int(e.sb.InodeTableStart) + 2 + int(ref&0xffff)
}

func TestCorrupt(t *testing.T) {
	good, e := smallImage(t)
	le := binary.LittleEndian
	root, a, g := inodePos(t, e, "."), inodePos(t, e, "a"), inodePos(t, e, "g")
	mutate := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tc := range []struct {
		name string
		img  []byte
		want error
		read string // when Open succeeds: reading this fails
	}{
		{"truncated superblock", good[:50], ErrCorrupt, ""},
		{"truncated image", good[:le.Uint64(good[40:])-1], ErrCorrupt, ""},
		{"magic", mutate(func(b []byte) { b[0] ^= 1 }), ErrCorrupt, ""},
		{"version", mutate(func(b []byte) { le.PutUint16(b[28:], 3) }), errors.ErrUnsupported, ""},
		{"compressor", mutate(func(b []byte) { le.PutUint16(b[20:], 9) }), errors.ErrUnsupported, ""},
		{"block log", mutate(func(b []byte) { le.PutUint16(b[22:], 16) }), ErrCorrupt, ""},
		{"block size", mutate(func(b []byte) { le.PutUint32(b[12:], 1<<30); le.PutUint16(b[22:], 30) }), ErrCorrupt, ""},
		{"bytes used", mutate(func(b []byte) { le.PutUint64(b[40:], 1<<40) }), ErrCorrupt, ""},
		{"inode table after directory table", mutate(func(b []byte) { le.PutUint64(b[64:], le.Uint64(b[72:])+1) }), ErrCorrupt, ""},
		{"root inode offset", mutate(func(b []byte) { le.PutUint64(b[32:], 0x1fff) }), ErrCorrupt, ""},
		{"root inode block", mutate(func(b []byte) { le.PutUint64(b[32:], 0x7fff_0000_0000) }), ErrCorrupt, ""},
		{"root inode type", mutate(func(b []byte) { le.PutUint16(b[root:], 0) }), ErrCorrupt, ""},
		{"root is a file", mutate(func(b []byte) { le.PutUint64(b[32:], le.Uint64(b[32:])&^0xffff|uint64(g-int(e.sb.InodeTableStart)-2)) }), ErrCorrupt, ""},
		{"metadata length", mutate(func(b []byte) { le.PutUint16(b[e.sb.InodeTableStart:], 0xffff) }), ErrCorrupt, ""},
		{"fragment count", mutate(func(b []byte) { le.PutUint32(b[16:], 100); le.PutUint64(b[80:], 1<<40) }), ErrCorrupt, ""},
		{"huge file size", mutate(func(b []byte) { le.PutUint32(b[g+16+12:], 0xffffffff) }), nil, "g"},
		{"huge block size entry", mutate(func(b []byte) { le.PutUint32(b[g+32:], 0x00ffffff) }), nil, "g"},
		{"fragment index", mutate(func(b []byte) { le.PutUint32(b[g+16+4:], 7) }), nil, "g"},
		{"data past the image", mutate(func(b []byte) { le.PutUint32(b[g+16:], uint32(len(good)-10)) }), nil, "g"},
		{"directory size", mutate(func(b []byte) { le.PutUint16(b[a+16+8:], 0xffff) }), nil, "a/f"},
		{"directory offset", mutate(func(b []byte) { le.PutUint16(b[a+16+10:], 0x2100) }), nil, "a/f"},
		{"directory loop", mutate(func(b []byte) { copy(b[a+16:a+20], b[root+16:root+20]); copy(b[a+24:a+28], b[root+24:root+28]) }), nil, "a/f"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Open(bytes.NewReader(tc.img), int64(len(tc.img)))
			if tc.read == "" {
				if !errors.Is(err, tc.want) {
					t.Errorf("Open = %v, want %v", err, tc.want)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatalf("Open = %v, want success (the damage is further in)", err)
			}
			if _, err := e.ReadFile(tc.read); err == nil {
				t.Errorf("ReadFile(%s) succeeded", tc.read)
			} else {
				t.Log(err)
			}
			if f, err := e.Open(tc.read); err == nil {
				if _, err := io.CopyN(io.Discard, f, 64<<20); err == nil {
					t.Errorf("reading %s through Open succeeded", tc.read)
				}
			}
			// a walk of the whole tree ends, with an error
			n := 0
			werr := fs.WalkDir(e, ".", func(p string, d fs.DirEntry, err error) error {
				if n++; n > 100 {
					return fmt.Errorf("walk visits %d entries", n)
				}
				if err == nil && d.Type().IsRegular() {
					_, err = e.ReadFile(p)
				}
				return err
			})
			if werr == nil {
				t.Errorf("walking the tree succeeded")
			} else if n > 100 {
				t.Error(werr)
			}
		})
	}
}

// TestLoopWalk checks that the loop is found where fs.WalkDir meets it.
func TestLoopWalk(t *testing.T) {
	good, e := smallImage(t)
	root, a := inodePos(t, e, "."), inodePos(t, e, "a")
	b := bytes.Clone(good)
	copy(b[a+16:a+20], b[root+16:root+20])
	copy(b[a+24:a+28], b[root+24:root+28])
	e, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ReadDir("a"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "loop") {
		t.Errorf("ReadDir(a) = %v, want a directory loop error", err)
	}
}
