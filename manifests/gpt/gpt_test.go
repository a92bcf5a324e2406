package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos-firmware/manifests/gpt/gpttest"
)

const imgSize = 4 << 20 // 4 MiB: above libblkid's 1440 KiB floor

var (
	rootX86  = mustType(Root, "x86-64")
	rootVerX = mustType(RootVerity, "x86-64")
	rootSigX = mustType(RootVeritySig, "x86-64")
	usrX86   = mustType(Usr, "x86-64")
	usrVerX  = mustType(UsrVerity, "x86-64")
	usrSigX  = mustType(UsrVeritySig, "x86-64")
	rootX86s = mustType(Root, "x86")
	rootA64  = mustType(Root, "arm64")
	rootVerA = mustType(RootVerity, "arm64")
	usrA64   = mustType(Usr, "arm64")
	generic  = LinuxGeneric.String()
)

func mustType(d Designator, arch string) string {
	g, ok := TypeGUID(d, arch)
	if !ok {
		panic(d.String() + " " + arch)
	}
	return g.String()
}

// layout places entries one after the other, 64 sectors each, from LBA 2048.
func layout(types ...string) []gpttest.Entry {
	var es []gpttest.Entry
	for i, typ := range types {
		first := uint64(2048 + 64*i)
		es = append(es, gpttest.Entry{Type: typ, FirstLBA: first, LastLBA: first + 63, Name: "p" + string(rune('a'+i))})
	}
	return es
}

func read(t *testing.T, tb gpttest.Table) (*Table, error) {
	t.Helper()
	if tb.Size == 0 {
		tb.Size = imgSize
	}
	img := tb.Write()
	return Read(bytes.NewReader(img), int64(len(img)))
}

func TestTypes(t *testing.T) {
	// values from the Discoverable Partitions Specification
	for _, c := range []struct {
		d          Designator
		arch, guid string
		name       string
	}{
		{Root, "x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "root-x86-64"},
		{RootVerity, "x86-64", "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5", "root-x86-64-verity"},
		{RootVeritySig, "x86-64", "41092b05-9fc8-4523-994f-2def0408b176", "root-x86-64-verity-sig"},
		{Usr, "x86-64", "8484680c-9521-48c6-9c11-b0720656f69e", "usr-x86-64"},
		{Root, "arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae", "root-arm64"},
		{UsrVeritySig, "arm64", "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a", "usr-arm64-verity-sig"},
		{Root, "riscv64", "72ec70a6-cf74-40e6-bd49-4bda08e8f224", "root-riscv64"},
	} {
		g, ok := TypeGUID(c.d, c.arch)
		if !ok || g.String() != c.guid {
			t.Errorf("TypeGUID(%s, %s) = %s, %v; want %s", c.d, c.arch, g, ok, c.guid)
		}
		typ, ok := LookupType(MustParseGUID(strings.ToUpper(c.guid)))
		if !ok || typ.String() != c.name {
			t.Errorf("LookupType(%s) = %v, %v; want %s", c.guid, typ, ok, c.name)
		}
	}
	if _, ok := LookupType(LinuxGeneric); ok {
		t.Errorf("the generic Linux type is not a Discoverable Partitions designator")
	}
	if _, err := ParseGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b7zz"); err == nil {
		t.Errorf("ParseGUID accepted a non-hex GUID")
	}
	if SecondaryArch("x86-64") != "x86" || SecondaryArch("arm64") != "arm" || SecondaryArch("riscv64") != "" {
		t.Errorf("SecondaryArch: %q %q %q", SecondaryArch("x86-64"), SecondaryArch("arm64"), SecondaryArch("riscv64"))
	}
}

func TestRead(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		es := []gpttest.Entry{
			{Type: rootX86, UUID: "11111111-2222-4333-8444-555555555555", FirstLBA: 256, LastLBA: 511, Attributes: FlagGrowFS, Name: "root-x86-64"},
			{},
			{Type: rootVerX, FirstLBA: 512, LastLBA: 575, Attributes: FlagReadOnly, Name: "root-x86-64-verity ✓"},
		}
		tab, err := read(t, gpttest.Table{SectorSize: ss, Entries: es, EntryCount: 128})
		if err != nil {
			t.Fatalf("sector size %d: %v", ss, err)
		}
		if tab.SectorSize != ss || tab.HeaderLBA != 1 || tab.PrimaryError != "" || len(tab.Partitions) != 2 || len(tab.Skipped) != 0 {
			t.Fatalf("sector size %d: %+v", ss, tab)
		}
		p := tab.Partitions[0]
		if p.Number != 1 || p.Type.String() != rootX86 || p.UUID.String() != "11111111-2222-4333-8444-555555555555" ||
			p.Name != "root-x86-64" || p.Attributes != FlagGrowFS || p.Offset != 256*int64(ss) || p.Size != 256*int64(ss) {
			t.Errorf("sector size %d: partition 1 = %+v", ss, p)
		}
		if q := tab.Partitions[1]; q.Number != 3 || q.Name != "root-x86-64-verity ✓" {
			t.Errorf("sector size %d: partition 3 = %+v", ss, q)
		}
		if tab.DiskGUID.String() != "c0ffee00-1234-4567-89ab-cdef01234567" {
			t.Errorf("DiskGUID = %s", tab.DiskGUID)
		}
		if s := tab.Section(&p); s.Size() != p.Size {
			t.Errorf("Section size %d, want %d", s.Size(), p.Size)
		}
	}
}

func TestReadRejects(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name string
		tb   gpttest.Table
		want string
	}{
		{"floppy", gpttest.Table{Size: 1440 * 1024}, "image size is 1474560 bytes; libblkid (and so systemd) ignores partition tables on images smaller than 1474561 bytes"},
		{"no signature", gpttest.Table{Mutate: func(h, a []byte) { copy(h, "EFI NOPE") }}, `no "EFI PART" signature at LBA 1 for sector sizes [512 1024 2048 4096]`},
		{"header CRC", gpttest.Table{NoCRC: true, NoBackup: true, Mutate: func(h, a []byte) { h[40]++ }}, "header at LBA 1: HeaderCRC32 is 0x"},
		{"header size", gpttest.Table{NoBackup: true, Mutate: func(h, a []byte) { le.PutUint32(h[12:], 600) }}, "header at LBA 1: HeaderSize is 600, want 92 to 512 (the sector size)"},
		{"my LBA", gpttest.Table{NoBackup: true, Mutate: func(h, a []byte) { le.PutUint64(h[24:], 7) }}, "header at LBA 1: MyLBA is 7, want 1"},
		{"usable order", gpttest.Table{NoBackup: true, FirstUsable: 100, LastUsable: 50}, "LastUsableLBA 50 is before FirstUsableLBA 100"},
		{"usable beyond", gpttest.Table{NoBackup: true, LastUsable: 1 << 40}, "LastUsableLBA is 1099511627776, beyond the image's last LBA 8191"},
		{"entry size", gpttest.Table{NoBackup: true, Mutate: func(h, a []byte) { le.PutUint32(h[84:], 256) }}, "SizeOfPartitionEntry is 256, want 128 (the only size libblkid reads)"},
		{"entry size 0", gpttest.Table{NoBackup: true, Mutate: func(h, a []byte) { le.PutUint32(h[84:], 0) }}, "SizeOfPartitionEntry is 0, want 128"},
		{"no entries", gpttest.Table{NoBackup: true, Mutate: func(h, a []byte) { le.PutUint32(h[80:], 0) }}, "NumberOfPartitionEntries is 0"},
		{"huge array", gpttest.Table{NoBackup: true, Mutate: func(h, a []byte) { le.PutUint32(h[80:], 1<<31) }}, "NumberOfPartitionEntries 2147483648 × 128 bytes is 274877906944 bytes, more than the 1048576 this reader accepts"},
		{"array beyond", gpttest.Table{NoBackup: true, Mutate: func(h, a []byte) { le.PutUint64(h[72:], 8190) }}, "the entry array (PartitionEntryLBA 8190, 16384 bytes) ends beyond the image's last LBA 8191"},
		{"array CRC", gpttest.Table{NoBackup: true, NoCRC: true, Entries: layout(rootX86), Mutate: func(h, a []byte) { a[40]++ }}, "PartitionEntryArrayCRC32 is 0x"},
		{"MBR magic", gpttest.Table{}, "protective MBR: boot signature at 510 is 00 00, want 55 aa"},
		{"MBR type", gpttest.Table{}, "protective MBR: no partition record of type 0xEE (record types 0x83, 0x00, 0x00, 0x00)"},
	}
	for _, c := range cases {
		tb := c.tb
		if tb.Size == 0 {
			tb.Size = imgSize
		}
		img := tb.Write()
		switch c.name {
		case "MBR magic":
			img[510], img[511] = 0, 0
		case "MBR type":
			img[446+4] = 0x83
		}
		_, err := Read(bytes.NewReader(img), int64(len(img)))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Read = %v, want ErrInvalid containing %q", c.name, err, c.want)
		}
	}
}

func TestHeaderInUsableArea(t *testing.T) {
	_, err := read(t, gpttest.Table{NoBackup: true, FirstUsable: 0, LastUsable: 8000, Mutate: func(h, a []byte) {
		binary.LittleEndian.PutUint64(h[40:], 0) // FirstUsableLBA 0 puts LBA 1 inside [0, 8000]
	}})
	if err == nil || !strings.Contains(err.Error(), "header at LBA 1: the header lies inside the usable area [0, 8000]") {
		t.Errorf("Read = %v", err)
	}
}

func TestBackupHeader(t *testing.T) {
	tab, err := read(t, gpttest.Table{Entries: layout(rootX86), NoCRC: true, Mutate: func(h, a []byte) { h[40]++ }})
	if err != nil {
		t.Fatal(err)
	}
	if tab.HeaderLBA != imgSize/512-1 || !strings.Contains(tab.PrimaryError, "HeaderCRC32") || len(tab.Partitions) != 1 {
		t.Errorf("backup: HeaderLBA %d PrimaryError %q partitions %d", tab.HeaderLBA, tab.PrimaryError, len(tab.Partitions))
	}
	// both broken: both reasons
	img := gpttest.Table{Size: imgSize, Entries: layout(rootX86), NoCRC: true, Mutate: func(h, a []byte) { h[40]++ }}.Write()
	img[len(img)-512+40]++
	_, err = Read(bytes.NewReader(img), int64(len(img)))
	if err == nil || !strings.Contains(err.Error(), "header at LBA 1: HeaderCRC32") || !strings.Contains(err.Error(), "backup header at LBA 8191") {
		t.Errorf("Read with both headers broken = %v", err)
	}
}

func TestSkipped(t *testing.T) {
	es := layout(rootX86, rootVerX)
	es[1].LastLBA = 1 << 30
	es = append(es, gpttest.Entry{Type: usrX86, FirstLBA: 5000, LastLBA: 4000})
	tab, err := read(t, gpttest.Table{Entries: es})
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 1 || len(tab.Skipped) != 2 ||
		!strings.Contains(tab.Skipped[0], "partition 2 (type "+rootVerX+"): LBAs [2112, 1073741824] are not inside the usable area [34, 8158]") {
		t.Errorf("Partitions %+v Skipped %q", tab.Partitions, tab.Skipped)
	}
}

// shortReader fails like a truncated device.
type shortReader struct{ data []byte }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.data)) {
		return 0, errors.New("device gone")
	}
	return bytes.NewReader(r.data).ReadAt(p, off)
}

func TestTruncated(t *testing.T) {
	img := gpttest.Table{Size: imgSize, Entries: layout(rootX86)}.Write()
	// the image claims 4 MiB but only 1 KiB is readable
	_, err := Read(shortReader{img[:1024]}, imgSize)
	if err == nil || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "device gone") {
		t.Errorf("Read of a failing reader = %v, want the I/O error", err)
	}
}

func TestSysext(t *testing.T) {
	type want struct {
		fs, root, rootVer, rootSig, usr, usrVer, usrSig int // partition numbers, 0 = none
		arch, name                                      string
	}
	label := func(es []gpttest.Entry, i int, name string) []gpttest.Entry { es[i].Name = name; return es }
	flag := func(es []gpttest.Entry, i int, f uint64) []gpttest.Entry { es[i].Attributes = f; return es }
	cases := []struct {
		name    string
		entries []gpttest.Entry
		arch    string
		want    want
		err     string
	}{
		{"auroraboot", layout(rootX86, rootVerX, rootSigX), "x86-64", want{fs: 1, root: 1, rootVer: 2, rootSig: 3, arch: "x86-64", name: "root-x86-64"}, ""},
		{"usr only", layout(usrX86, usrVerX, usrSigX), "x86-64", want{fs: 1, usr: 1, usrVer: 2, usrSig: 3, arch: "x86-64", name: "usr-x86-64"}, ""},
		{"root and usr", layout(usrX86, rootX86), "x86-64", want{fs: 2, root: 2, usr: 1, arch: "x86-64", name: "root-x86-64"}, ""},
		{"native wins", layout(rootA64, rootX86s, rootX86), "x86-64", want{fs: 3, root: 3, arch: "x86-64", name: "root-x86-64"}, ""},
		{"secondary next", layout(rootA64, rootX86s), "x86-64", want{fs: 2, root: 2, arch: "x86", name: "root-x86"}, ""},
		{"other arch last", layout(rootA64, rootVerA), "x86-64", want{fs: 1, root: 1, rootVer: 2, arch: "arm64", name: "root-arm64"}, ""},
		{"arm64 host", layout(rootX86, rootA64), "arm64", want{fs: 2, root: 2, arch: "arm64", name: "root-arm64"}, ""},
		{"verity of root's arch", layout(rootX86, rootVerA), "x86-64", want{fs: 1, root: 1, arch: "x86-64", name: "root-x86-64"}, ""},
		{"usr of root's arch", layout(rootX86, usrA64), "x86-64", want{fs: 1, root: 1, arch: "x86-64", name: "root-x86-64"}, ""},
		{"newest label", label(label(label(layout(rootX86, rootX86, rootX86), 0, "fw_1.2"), 1, "fw_1.10"), 2, "fw_1.9"), "x86-64", want{fs: 2, root: 2, arch: "x86-64", name: "root-x86-64"}, ""},
		{"same label first", label(label(layout(rootX86, rootX86), 0, "fw"), 1, "fw"), "x86-64", want{fs: 1, root: 1, arch: "x86-64", name: "root-x86-64"}, ""},
		{"no-auto ignored", flag(layout(rootX86, rootX86s), 0, FlagNoAuto), "x86-64", want{fs: 2, root: 2, arch: "x86", name: "root-x86"}, ""},
		{"generic", layout(generic), "x86-64", want{fs: 1, root: 1, name: "linux-generic"}, ""},
		{"generic ignored with root", layout(generic, rootX86), "x86-64", want{fs: 2, root: 2, arch: "x86-64", name: "root-x86-64"}, ""},
		{"no-auto generic", flag(layout(generic), 0, FlagNoAuto), "x86-64", want{}, "no root or usr partition (and no generic Linux partition) among partitions 1: " + generic + " (no-auto)"},
		{"two generic", layout(generic, generic), "x86-64", want{}, "no root or usr partition, and 2 generic Linux partitions (1 and 2): ambiguous"},
		{"empty", nil, "x86-64", want{}, "no root or usr partition (and no generic Linux partition) among no partitions"},
		{"verity without root", layout(rootVerX, usrX86), "x86-64", want{}, "partition 1 is root-x86-64-verity but there is no root-x86-64 partition"},
		{"sig without verity", layout(rootX86, rootSigX), "x86-64", want{}, "partition 2 is root-x86-64-verity-sig but there is no root-x86-64-verity partition"},
		{"usr verity without usr", layout(rootX86, usrVerX), "x86-64", want{}, "partition 2 is usr-x86-64-verity but there is no usr-x86-64 partition"},
		{"usr sig without verity", layout(usrX86, usrSigX), "x86-64", want{}, "partition 2 is usr-x86-64-verity-sig but there is no usr-x86-64-verity partition"},
		{"two verity", layout(rootX86, rootVerX, usrX86, usrVerX), "x86-64", want{}, "both root-verity (partition 2) and usr-verity (partition 4): systemd supports one verity partition per image"},
		{"verity root with usr", layout(rootX86, rootVerX, usrX86), "x86-64", want{}, "root-verity (partition 2) with a separate usr partition (3): systemd refuses a verity root with a split /usr"},
		{"unknown types", layout("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"), "x86-64", want{}, "among partitions 1: ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"},
	}
	num := func(p *Partition) int {
		if p == nil {
			return 0
		}
		return p.Number
	}
	for _, c := range cases {
		tab, err := read(t, gpttest.Table{Entries: c.entries})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ps, err := tab.Sysext(c.arch)
		if c.err != "" {
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: Sysext = %v, want an error containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		fs, name := ps.FS()
		got := want{num(fs), num(ps.Root), num(ps.RootVerity), num(ps.RootVeritySig), num(ps.Usr), num(ps.UsrVerity), num(ps.UsrVeritySig), ps.Arch, name}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestRepart reads a DDI as AuroraBoot builds it (systemd-repart: root, root-verity,
// root-verity-sig) and checks what systemd-repart wrote: types, labels, attribute bits.
func TestRepart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.img")
	if err := os.WriteFile(data, bytes.Repeat([]byte("kairos-firmware "), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "fw.raw")
	gpttest.Repart(t, raw, []gpttest.Part{
		{Type: "root-x86-64", Label: "fw_1.0", CopyBlocks: data, Verity: "data", VerityMatchKey: "root"},
		{Type: "root-x86-64-verity", Verity: "hash", VerityMatchKey: "root"},
		{Type: "root-x86-64-verity-sig", Verity: "signature", VerityMatchKey: "root"},
		{Type: "usr-arm64", CopyBlocks: data, Extra: []string{"NoAuto=yes"}},
	})
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	tab, err := Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 4 || tab.SectorSize != 512 {
		t.Fatalf("%d partitions, sector size %d", len(tab.Partitions), tab.SectorSize)
	}
	want := []struct {
		typ, name string
		set       uint64
	}{
		{"root-x86-64", "fw_1.0", FlagGrowFS},
		{"root-x86-64-verity", "root-x86-64-verity", FlagReadOnly},
		{"root-x86-64-verity-sig", "root-x86-64-verity-sig", 0},
		{"usr-arm64", "usr-arm64", FlagNoAuto},
	}
	for i, w := range want {
		p := tab.Partitions[i]
		typ, ok := LookupType(p.Type)
		if !ok || typ.String() != w.typ || p.Name != w.name || p.Attributes&w.set != w.set || p.Number != i+1 {
			t.Errorf("partition %d: type %v name %q attributes %#x; want %s %q with %#x", p.Number, typ, p.Name, p.Attributes, w.typ, w.name, w.set)
		}
	}
	// the data partition holds exactly what was copied in
	root := tab.Partitions[0]
	got := make([]byte, 16)
	if _, err := tab.Section(&root).ReadAt(got, 4095*16); err != nil || string(got) != "kairos-firmware " {
		t.Errorf("data partition ends with %q, %v", got, err)
	}
	ps, err := tab.Sysext("x86-64")
	if err != nil || ps.Root.Number != 1 || ps.RootVerity.Number != 2 || ps.RootVeritySig.Number != 3 || ps.Usr != nil {
		t.Errorf("Sysext = %+v, %v", ps, err)
	}
}
