package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos-firmware/tests/imagetest"
)

// FuzzOpen feeds corrupt images to the superblock, metadata, inode, directory, fragment and
// data parsers and to every decompressor: they may fail, never panic, hang or allocate
// without bound.
func FuzzOpen(f *testing.F) {
	// a synthetic superblock-only image, always available
	synth := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint32(synth[0:], Magic)
	le.PutUint32(synth[12:], 1<<17)
	le.PutUint16(synth[20:], Gzip)
	le.PutUint16(synth[22:], 17)
	le.PutUint16(synth[28:], 4)
	le.PutUint64(synth[40:], 4096)
	le.PutUint64(synth[64:], 96)
	le.PutUint64(synth[72:], 200)
	f.Add(synth)
	if _, err := exec.LookPath("mksquashfs"); err == nil {
		src := f.TempDir()
		imagetest.WriteTree(f, src, map[string]string{
			"a":         "hello",
			"d/big":     string(bytes.Repeat([]byte("0123456789abcdef"), 1000)),
			"d/link":    "->../a",
			"d/e/empty": "",
		})
		for i, opts := range [][]string{
			{"-noI", "-noD", "-noF", "-b", "4096"},
			{"-comp", "gzip", "-b", "4096"},
			{"-comp", "lz4", "-Xhc"},
			{"-comp", "xz", "-no-fragments"},
			{"-comp", "zstd", "-always-use-fragments", "-b", "4096"},
			{"-comp", "lzo"},
			{"-comp", "lzma"},
		} {
			img := filepath.Join(f.TempDir(), fmt.Sprint(i))
			mksquashfs(f, img, src, append(opts, "-nopad")...)
			b, err := os.ReadFile(img)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
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

// BenchmarkRead4000 opens a 4,000-file lz4 squashfs image, walks it and reads every file.
func BenchmarkRead4000(b *testing.B) {
	src := b.TempDir()
	files := map[string]string{}
	for i := 0; i < 4000; i++ {
		files[fmt.Sprintf("usr/lib/firmware/vendor%02d/fw-%04d.bin", i%40, i)] = fmt.Sprintf("%0512d", i)
	}
	imagetest.WriteTree(b, src, files)
	img := filepath.Join(b.TempDir(), "fw.squashfs")
	mksquashfs(b, img, src, "-comp", "lz4", "-Xhc")
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
