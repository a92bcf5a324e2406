package erofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/imagetest"
	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// Images from erofs-utils 1.8.6, which tests/fixtures/erofs-utils.sh builds from source into
// .cache/ (make fixtures): Debian bookworm's erofs-utils 1.5 writes only lz4, so this is where
// the lzma (MicroLZMA), deflate and zstd decoders, fragments and dedupe meet real images.

// erofsUtils18Version is the erofs-utils release tests/fixtures/erofs-utils.sh builds.
const erofsUtils18Version = "1.8.6"

// mkfs18Dir is where tests/fixtures/erofs-utils.sh puts erofs-utils 1.8.6:
// KAIROS_FIRMWARE_TEST_EROFS_UTILS, or .cache/erofs-utils-1.8.6 of the repository.
func mkfs18Dir() string {
	if dir := os.Getenv("KAIROS_FIRMWARE_TEST_EROFS_UTILS"); dir != "" {
		return dir
	}
	return filepath.Join(testkernel.RepoRoot(), ".cache", "erofs-utils-"+erofsUtils18Version)
}

// mkfs18 returns the mkfs.erofs in mkfs18Dir. Where it is missing the test is skipped with the
// command that builds it, except under CI, where that is a failure (testkernel.Missing).
func mkfs18(t testing.TB) string {
	t.Helper()
	dir := mkfs18Dir()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		testkernel.Missing(t, "erofs-utils %s is missing in %s: run `make fixtures` (or tests/fixtures/erofs-utils.sh .cache)", erofsUtils18Version, dir)
	}
	tool := filepath.Join(dir, "bin", "mkfs.erofs")
	out, err := exec.Command(tool, "--version").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(" "+erofsUtils18Version)) {
		t.Fatalf("%s --version: %v\n%s\nwant erofs-utils %s", tool, err, out, erofsUtils18Version)
	}
	return tool
}

// mkfs18Compressors lists the compressors of that mkfs.erofs, from its --version line
// "available compressors: lz4, lz4hc, lzma, deflate, libdeflate, zstd".
func mkfs18Compressors(t testing.TB, tool string) map[string]bool {
	out, _ := exec.Command(tool, "--version").CombinedOutput()
	m := regexp.MustCompile(`(?m)^available compressors: (.*)$`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --version names no compressors:\n%s", tool, out)
	}
	algs := map[string]bool{}
	for _, a := range strings.Split(string(m[1]), ",") {
		algs[strings.TrimSpace(a)] = true
	}
	return algs
}

func makeErofs18(t testing.TB, tool, dst, src string, opts ...string) {
	t.Helper()
	args := append([]string{"--quiet", "-T0", "--all-root"}, opts...)
	args = append(args, dst, src)
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs %s %v: %v\n%s", erofsUtils18Version, args, err, out)
	}
}

// fixture18 writes a tree for the compressed paths: nested directories, empty and tiny files,
// files that compress into one pcluster and files that span hundreds, random data (plain
// pclusters), long zero runs (extents decoding to far more than their pcluster), data that
// alternates between random and compressible at odd offsets, repeated content for dedupe and
// fragments, symlinks (relative, absolute, dangling, long, to a directory), a hard link, and a
// range of permission bits.
func fixture18(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewSource(18))
	random := func(n int) string {
		b := make([]byte, n)
		rng.Read(b)
		return string(b)
	}
	words := strings.Fields("firmware blob device driver probe kernel module table entry offset " +
		"length header version vendor amdgpu iwlwifi rtw88 i915 nvidia realtek intel load")
	prose := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			fmt.Fprintf(&b, "%s %s %d %s\n", words[rng.Intn(len(words))], words[rng.Intn(len(words))], rng.Intn(100000), words[rng.Intn(len(words))])
		}
		return b.String()[:n]
	}
	var mixed strings.Builder
	for mixed.Len() < 1<<20 {
		mixed.WriteString(random(1000 + rng.Intn(9000)))
		mixed.WriteString(prose(1000 + rng.Intn(30000)))
	}
	shared := prose(300000)
	files := map[string]string{
		"empty":                  "",
		"one":                    "x",
		"small.txt":              "a small file\n",
		"pcluster-one.txt":       prose(3000), // one pcluster, a tail on its own
		"pcluster-one-4k.txt":    prose(4096),
		"pcluster-one-big.txt":   prose(12000), // one pcluster once compressed
		"text-2m.txt":            prose(2 << 20),
		"random-512k.bin":        random(512 << 10),
		"random-odd.bin":         random(3*4096 + 123),
		"zeros-1m.bin":           strings.Repeat("\x00", 1<<20),
		"mixed-1m.bin":           mixed.String(),
		"dup/shared-a":           shared,
		"dup/shared-b":           shared,
		"dup/shared-prefix":      shared[:150000],
		"dup/shared-shifted":     "header " + shared,
		"dup/shared-tail":        random(7000) + shared[100000:],
		"a/b/c/d/e/f/deep.txt":   prose(5000),
		"a/b/c/d/e/empty":        "",
		"a/b/c/sibling.bin":      random(20000),
		"a/b/link-up":            "->../../text-2m.txt",
		"link-rel":               "->a/b/c/d/e/f/deep.txt",
		"link-abs":               "->/usr/lib/firmware",
		"link-dangling":          "->does/not/exist",
		"link-dir":               "->a/b",
		"link-long":              "->" + strings.Repeat("long-component/", 60) + "end",
		"mode/exec":              "#!/bin/sh\necho hi\n",
		"mode/private":           prose(777),
		"mode/readonly":          prose(5555),
		"mode/setuid":            prose(100),
		"mode/private-dir/f.txt": "in a 0700 directory\n",
		"mode/sticky-dir/f.txt":  "in a 01777 directory\n",
	}
	for i := 0; i < 120; i++ {
		files[fmt.Sprintf("many/fw-%03d.bin", i)] = fmt.Sprintf("firmware %d ", i) + prose(rng.Intn(6000))
	}
	imagetest.WriteTree(t, root, files)
	if err := os.Link(filepath.Join(root, "pcluster-one-big.txt"), filepath.Join(root, "hardlink.txt")); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]fs.FileMode{
		"mode/exec":        0o755,
		"mode/private":     0o600,
		"mode/readonly":    0o444,
		"mode/setuid":      0o755 | fs.ModeSetuid,
		"mode/private-dir": 0o700,
		"mode/sticky-dir":  0o777 | fs.ModeSticky,
	} {
		if err := os.Chmod(filepath.Join(root, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// compareModes checks every entry's full mode (type, permissions, setuid/setgid/sticky)
// against the source tree; compareTree checks the rest.
func compareModes(t *testing.T, e *FS, src string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		want, err := os.Lstat(p)
		if err != nil {
			return err
		}
		got, err := e.Lstat(rel)
		if err != nil {
			t.Errorf("Lstat(%s): %v", rel, err)
			return nil
		}
		if got.Mode() != want.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, got.Mode(), want.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// extentCensus counts the kinds of extents an image's compressed files map to, so that each
// variant can prove it reached the code it is meant to test.
type extentCensus struct {
	algs       map[string]int // by AlgName, "plain"/"plain-interlaced" for uncompressed pclusters
	fragment   int            // extents read from the packed inode
	inline     int            // ztailpacking: inline tail pclusters
	partial    int            // extents that use a prefix of their pcluster (dedupe)
	bigPcl     int            // pclusters of more than one block
	shared     int            // pclusters that more than one file refers to (dedupe)
	compressed int            // files with a compressed layout
}

func census(t *testing.T, e *FS, src string) *extentCensus {
	t.Helper()
	c := &extentCensus{algs: map[string]int{}}
	owners := map[int64]map[uint64]bool{} // pcluster address → nids
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		ino, err := e.walk("census", filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if ino.layout != layoutCompressedFull && ino.layout != layoutCompressedCompact {
			return nil
		}
		c.compressed++
		r := e.newReader(ino)
		if err := r.loadZInfo(); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		for off := int64(0); off < ino.size; {
			x, err := r.mapExtent(off, false)
			if err != nil {
				return fmt.Errorf("%s: mapping %d: %w", rel, off, err)
			}
			switch {
			case x.fragment:
				c.fragment++
			default:
				c.algs[AlgName(x.alg)]++
				if x.inline {
					c.inline++
				} else {
					if owners[x.pa] == nil {
						owners[x.pa] = map[uint64]bool{}
					}
					owners[x.pa][ino.nid] = true
				}
				if x.plen > e.sb.BlockSize() {
					c.bigPcl++
				}
			}
			if x.partial {
				c.partial++
			}
			if x.la+x.llen <= off {
				return fmt.Errorf("%s: extent [%d, %d) does not advance past %d", rel, x.la, x.la+x.llen, off)
			}
			off = x.la + x.llen
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, nids := range owners {
		if len(nids) > 1 {
			c.shared++
		}
	}
	return c
}

type variant18 struct {
	name   string
	opts   []string
	needs  string    // compressor the variant needs
	expect []check18 // what the image must show
}

// check18 returns what an image lacks, or "".
type check18 func(*extentCensus, Superblock) string

func uses18(alg string) check18 {
	return func(c *extentCensus, _ Superblock) string {
		if c.algs[alg] == 0 {
			return fmt.Sprintf("no %s extent (extents by algorithm: %v)", alg, c.algs)
		}
		return ""
	}
}

func fragments18(c *extentCensus, sb Superblock) string {
	if sb.FeatureIncompat&incompatFragments == 0 || c.fragment == 0 {
		return fmt.Sprintf("no fragment (feature_incompat 0x%x, %d fragment extents)", sb.FeatureIncompat, c.fragment)
	}
	return ""
}

func allFragments18(c *extentCensus, _ Superblock) string {
	if c.fragment < c.compressed {
		return fmt.Sprintf("%d fragment extents for %d compressed files", c.fragment, c.compressed)
	}
	return ""
}

func inline18(c *extentCensus, sb Superblock) string {
	if sb.FeatureIncompat&incompatZTailPacking == 0 || c.inline == 0 {
		return fmt.Sprintf("no inline tail pcluster (feature_incompat 0x%x)", sb.FeatureIncompat)
	}
	return ""
}

func shared18(c *extentCensus, _ Superblock) string {
	if c.shared == 0 {
		return "no pcluster is shared by two files"
	}
	return ""
}

func big18(c *extentCensus, _ Superblock) string {
	if c.bigPcl == 0 {
		return "no pcluster of more than one block"
	}
	return ""
}

// variants18: each compressor plain, with big pclusters, fragments, inline tails, dedupe, every
// file in fragments, all of those together and (where mkfs.erofs is quick) 1 KiB blocks; then
// compression levels, dictionary sizes and two algorithms in one image.
func variants18() []variant18 {
	var v []variant18
	for _, a := range []struct {
		comp, alg string
		b1024     bool // also with 1 KiB blocks (sub-page lclusters); lzma is slow to make them
	}{
		{"lzma", "lzma", false},
		{"deflate", "deflate", true},
		{"libdeflate", "deflate", false},
		{"zstd", "zstd", true},
		{"lz4hc", "lz4", false},
		{"lz4", "lz4", true},
	} {
		n, z, uses := a.comp, "-z"+a.comp, uses18(a.alg)
		v = append(v,
			variant18{n, []string{z}, a.comp, []check18{uses}},
			variant18{n + "-C65536", []string{z, "-C65536"}, a.comp, []check18{uses, big18}},
			variant18{n + "-fragments", []string{z, "-Efragments"}, a.comp, []check18{uses, fragments18}},
			variant18{n + "-ztailpacking", []string{z, "-Eztailpacking"}, a.comp, []check18{uses, inline18}},
			variant18{n + "-dedupe", []string{z, "-Ededupe"}, a.comp, []check18{uses, shared18}},
			variant18{n + "-all-fragments", []string{z, "-Eall-fragments"}, a.comp, []check18{fragments18, allFragments18}},
			variant18{n + "-all", []string{z, "-C16384", "-Eztailpacking,fragments,dedupe"}, a.comp, []check18{uses, fragments18, shared18}},
		)
		if a.b1024 {
			v = append(v, variant18{n + "-b1024", []string{z, "-b1024"}, a.comp, []check18{uses}})
		}
	}
	return append(v,
		variant18{"lzma-level9", []string{"-zlzma,level=9"}, "lzma", []check18{uses18("lzma")}},
		variant18{"lzma-dictsize", []string{"-zlzma,dictsize=65536", "-C131072"}, "lzma", []check18{uses18("lzma"), big18}},
		variant18{"zstd-level12", []string{"-zzstd,level=12", "-C131072"}, "zstd", []check18{uses18("zstd"), big18}},
		variant18{"deflate-level9", []string{"-zdeflate,level=9"}, "deflate", []check18{uses18("deflate")}},
		// two algorithms in one image: lz4 for HEAD1 extents, lzma for the HEAD2 extents of the
		// files the compress-hints file names (HINTS is its path)
		variant18{"lz4-lzma", []string{"-zlz4:lzma", "--compress-hints=HINTS"}, "lzma", []check18{uses18("lz4"), uses18("lzma")}},
	)
}

// TestMkfs18 builds an image of fixture18 with every variant of erofs-utils 1.8.6 and reads it
// back: every file's content (whole and in odd-sized reads), size, mode and symlink target.
func TestMkfs18(t *testing.T) {
	tool := mkfs18(t)
	comps := mkfs18Compressors(t, tool)
	src := fixture18(t)
	dir := t.TempDir()
	// compress-hints: files under dup/ and many/ with the second algorithm (lzma)
	hints := filepath.Join(dir, "hints")
	if err := os.WriteFile(hints, []byte("4096 1 ^dup/\n4096 1 ^many/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range variants18() {
		t.Run(v.name, func(t *testing.T) {
			if !comps[v.needs] {
				t.Fatalf("mkfs.erofs %s has no %s compressor (has %v)", erofsUtils18Version, v.needs, comps)
			}
			t.Parallel()
			opts := make([]string, len(v.opts))
			for i, o := range v.opts {
				opts[i] = strings.ReplaceAll(o, "HINTS", hints)
			}
			img := filepath.Join(dir, v.name+".erofs")
			makeErofs18(t, tool, img, src, opts...)
			e := openImage(t, img)
			compareTree(t, e, src)
			compareModes(t, e, src)
			c := census(t, e, src)
			t.Logf("%v: %d compressed files; extents %v, %d fragment, %d inline, %d partial, %d big pclusters, %d shared", opts, c.compressed, c.algs, c.fragment, c.inline, c.partial, c.bigPcl, c.shared)
			for _, check := range v.expect {
				if msg := check(c, e.Superblock()); msg != "" {
					t.Errorf("the image does not exercise what %v should: %s", opts, msg)
				}
			}
			// a hard link stays one inode
			a, errA := e.Lstat("hardlink.txt")
			b, errB := e.Lstat("pcluster-one-big.txt")
			if errA != nil || errB != nil || a.Sys().(*Stat).NID != b.Sys().(*Stat).NID || a.Sys().(*Stat).Nlink != 2 {
				t.Errorf("hard link: %v %v, %v %v; want one inode with 2 links", a, errA, b, errB)
			}
		})
	}
}

// mkfs18FuzzMax bounds the size of an image FuzzErofs takes as a seed.
const mkfs18FuzzMax = 64 << 10

// mkfs18Seeds returns small images of erofs-utils 1.8.6 for FuzzErofs: lzma, deflate and zstd
// pclusters, fragments, dedupe and inline tails, each with its superblock checksum turned off
// (the checksum would reject nearly every mutation of the superblock). Without the fixture
// there are none: FuzzErofs keeps its other seeds (TestMkfs18 reports the missing fixture).
func mkfs18Seeds(f *testing.F) [][]byte {
	f.Helper()
	tool := filepath.Join(mkfs18Dir(), "bin", "mkfs.erofs")
	if _, err := os.Stat(filepath.Join(mkfs18Dir(), ".complete")); err != nil {
		return nil
	}
	src := f.TempDir()
	big := strings.Repeat("0123456789abcdef", 2000)
	imagetest.WriteTree(f, src, map[string]string{
		"a":          "hello",
		"d/big":      big,
		"d/big-copy": "header " + big[:24000],
		"d/link":     "->../a",
		"d/e/empty":  "",
	})
	var seeds [][]byte
	for i, opts := range [][]string{
		{"-zlzma"},
		{"-zlzma", "-Ededupe"},
		{"-zdeflate"},
		{"-zzstd"},
		{"-zlzma", "-Efragments"},
		{"-zzstd", "-Eall-fragments"},
		{"-zdeflate", "-Eztailpacking"},
		{"-zlzma", "-C16384", "-Eztailpacking,fragments,dedupe"},
		{"-zlzma", "-b1024"},
	} {
		img := filepath.Join(f.TempDir(), fmt.Sprint(i))
		makeErofs18(f, tool, img, src, opts...)
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) >= mkfs18FuzzMax {
			f.Logf("mkfs.erofs %s %v: %d bytes, too large for a fuzz seed", erofsUtils18Version, opts, len(b))
			continue
		}
		binary.LittleEndian.PutUint32(b[SuperOffset+8:], binary.LittleEndian.Uint32(b[SuperOffset+8:])&^compatSBChecksum)
		seeds = append(seeds, b)
	}
	return seeds
}
