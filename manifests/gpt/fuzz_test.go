package gpt

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
)

// regions is a sparse image: zero except for the given byte ranges.
type regions struct {
	size  int64
	parts []region
}

type region struct {
	off  int64
	data []byte
}

func (r *regions) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.size-off))
	clear(p[:n])
	for _, g := range r.parts {
		lo, hi := max(off, g.off), min(off+int64(n), g.off+int64(len(g.data)))
		if lo < hi {
			copy(p[lo-off:hi-off], g.data[lo-g.off:hi-g.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Fuzz input layout, kept short because the fuzzer's minimizer is quadratic in the input
// length: byte 0 holds flags, then the 92-byte header, then entries of 56 bytes (type, UUID,
// LBAs, attributes; names stay empty) written at the header's PartitionEntryLBA.
const (
	fuzzFixHeaderCRC = 1 << iota // recompute HeaderCRC32
	fuzzFixArrayCRC              // recompute PartitionEntryArrayCRC32
	fuzzNoPMBR                   // leave the protective MBR out
	fuzzSector4096               // 4096-byte sectors
	fuzzBackup                   // put the header at the last LBA (the primary stays empty)
)

const fuzzSize = 2 << 20

func fuzzImage(data []byte) *regions {
	img := &regions{size: fuzzSize}
	if len(data) < 1+headerMin {
		return img
	}
	flags, hdr, ents := data[0], append([]byte(nil), data[1:1+headerMin]...), data[1+headerMin:]
	ss := int64(512)
	if flags&fuzzSector4096 != 0 {
		ss = 4096
	}
	if flags&fuzzNoPMBR == 0 {
		mbr := make([]byte, 512)
		mbr[446+4], mbr[510], mbr[511] = 0xEE, 0x55, 0xAA
		img.parts = append(img.parts, region{0, mbr})
	}
	le := binary.LittleEndian
	array := make([]byte, 0, len(ents)/56*EntrySize)
	for len(ents) >= 56 {
		e := make([]byte, EntrySize)
		copy(e, ents[:56])
		array, ents = append(array, e...), ents[56:]
	}
	arrayOff := int64(le.Uint64(hdr[72:80]) % uint64(fuzzSize/ss) * uint64(ss))
	img.parts = append(img.parts, region{arrayOff, array})
	if flags&fuzzFixArrayCRC != 0 {
		n := min(uint64(le.Uint32(hdr[80:84]))*uint64(le.Uint32(hdr[84:88])), MaxEntryArray)
		buf := make([]byte, n)
		img.ReadAt(buf, arrayOff)
		le.PutUint32(hdr[88:92], crc32.ChecksumIEEE(buf))
	}
	if flags&fuzzFixHeaderCRC != 0 {
		le.PutUint32(hdr[16:20], 0)
		le.PutUint32(hdr[16:20], crc32.ChecksumIEEE(hdr))
	}
	at := ss
	if flags&fuzzBackup != 0 {
		at = fuzzSize - ss
	}
	img.parts = append(img.parts, region{at, hdr})
	return img
}

// fuzzInput turns a table written by gpttest into the fuzz layout (4 entries).
func fuzzInput(flags byte, tb gpttest.Table) []byte {
	tb.Size, tb.EntryCount = fuzzSize, 4
	img := tb.Write()
	ss := 512
	if tb.SectorSize != 0 {
		ss = tb.SectorSize
	}
	in := append([]byte{flags}, img[ss:ss+headerMin]...)
	for i := 0; i < 4; i++ {
		in = append(in, img[2*ss+i*EntrySize:2*ss+i*EntrySize+56]...)
	}
	return in
}

// FuzzGPT runs Read and Sysext on images made from the input: they must never panic, and
// what they accept must lie inside the image.
func FuzzGPT(f *testing.F) {
	fix := byte(fuzzFixHeaderCRC | fuzzFixArrayCRC)
	f.Add(fuzzInput(fix, gpttest.Table{Entries: layout(rootX86, rootVerX, rootSigX)}))
	f.Add(fuzzInput(fix, gpttest.Table{Entries: layout(usrX86, rootX86, usrA64, generic)}))
	f.Add(fuzzInput(fix, gpttest.Table{Entries: layout(generic, generic)}))
	f.Add(fuzzInput(fix|fuzzSector4096, gpttest.Table{SectorSize: 4096, Entries: layout(rootA64, rootVerA)}))
	f.Add(fuzzInput(0, gpttest.Table{Entries: layout(usrX86, usrVerX, usrSigX)}))
	f.Add([]byte("not a disk image"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img := fuzzImage(data)
		tab, err := Read(img, img.size)
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Offset < 0 || p.Size <= 0 || p.Offset+p.Size > img.size || p.Number < 1 {
				t.Fatalf("partition %+v lies outside the %d-byte image", p, img.size)
			}
			var b [1]byte
			if _, err := tab.Section(&p).ReadAt(b[:], p.Size-1); err != nil {
				t.Fatalf("reading the last byte of partition %d: %v", p.Number, err)
			}
		}
		for _, arch := range []string{"x86-64", "arm64", "riscv64", ""} {
			ps, err := tab.Sysext(arch)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Sysext(%q) = %v, not ErrInvalid", arch, err)
				}
				continue
			}
			if fs, name := ps.FS(); fs == nil || name == "" {
				t.Fatalf("Sysext(%q) accepted %+v without a filesystem partition", arch, ps)
			}
		}
	})
}

// TestFuzzSeeds checks that the seeds reach Sysext: the harness itself works.
func TestFuzzSeeds(t *testing.T) {
	fix := byte(fuzzFixHeaderCRC | fuzzFixArrayCRC)
	img := fuzzImage(fuzzInput(fix, gpttest.Table{Entries: layout(rootX86, rootVerX, rootSigX)}))
	tab, err := Read(img, img.size)
	if err != nil {
		t.Fatal(err)
	}
	if ps, err := tab.Sysext("x86-64"); err != nil || ps.RootVeritySig == nil {
		t.Fatalf("Sysext = %+v, %v", ps, err)
	}
	img = fuzzImage(fuzzInput(fix|fuzzBackup, gpttest.Table{Entries: layout(rootX86)}))
	if _, err := Read(img, img.size); err == nil {
		t.Fatalf("a backup header with the primary's MyLBA was accepted")
	}
}
