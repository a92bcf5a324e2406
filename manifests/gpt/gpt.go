// Package gpt reads the GUID partition table of a disk image and picks the partitions
// systemd-sysext would mount from a Discoverable Disk Image (DDI): the root or /usr
// partition for the host architecture, with its -verity and -verity-sig siblings.
//
// Specifications: UEFI 2.10 section 5.3 (GPT), the UAPI Discoverable Partitions
// Specification (https://uapi-group.org/specifications/specs/discoverable_partitions_specification/)
// and the DDI specification (https://uapi-group.org/specifications/specs/discoverable_disk_image/).
// The table is validated the way libblkid's GPT prober (util-linux
// libblkid/src/partitions/gpt.c) does, since that is what systemd's dissect-image.c relies on;
// the partition choice follows dissect_image() in systemd's src/shared/dissect-image.c.
//
// This is our own code rather than github.com/diskfs/go-diskfs/partition/gpt (v1.9.4): that
// package allocates the entry array from the untrusted header fields without a cap (count ×
// size), loops forever on an entry size of 0 and ignores the protective MBR. Reading a GPT
// is about 300 lines; every check here names the field and both values.
package gpt

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// ErrInvalid marks a table that is not a usable GPT. Errors wrap it and name the field and
// both values.
var ErrInvalid = errors.New("invalid GPT")

// Limits. SectorSizes are the logical sector sizes systemd (>= v253, probe_sector_size in
// src/shared/dissect-image.c) probes for; systemd 252 only reads 512-byte sectors.
var SectorSizes = []int{512, 1024, 2048, 4096}

const (
	// headerMin is the UEFI header size (92 bytes, the fields this package reads).
	headerMin = 92
	// EntrySize is the only entry size libblkid accepts (UEFI allows 128 × 2^n).
	EntrySize = 128
	// MaxEntryArray caps the entry array this package reads: 1 MiB, 8192 entries of 128 bytes
	// (libblkid accepts up to 4 GiB; real tables hold 128 entries, 16 KiB).
	MaxEntryArray = 1 << 20
	// MinImageSize: libblkid ignores partition tables on devices of at most 1440 KiB
	// ("ignore floppies", gpt_pt_idinfo.minsz), so systemd does not see a GPT there.
	MinImageSize = 1440*1024 + 1
)

// GPT attribute bits of the Discoverable Partitions Specification (sd-gpt.h SD_GPT_FLAG_*).
const (
	FlagGrowFS   uint64 = 1 << 59
	FlagReadOnly uint64 = 1 << 60
	FlagNoAuto   uint64 = 1 << 63
)

// GUID is a GUID in its textual byte order (as printed, RFC 4122); on disk GPT stores the
// first three fields little endian, which Read converts.
type GUID [16]byte

// ParseGUID parses the 36-character form, e.g. "4f68bce3-e8cd-4db1-96e7-fbcaf984b709".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	digits := strings.ReplaceAll(s, "-", "")
	if _, err := hex.Decode(g[:], []byte(digits)); err != nil {
		return GUID{}, fmt.Errorf("GUID %q: %w", s, err)
	}
	return g, nil
}

// MustParseGUID is ParseGUID for constants; it panics on a malformed literal.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
}

// IsZero reports the all-zero GUID, the type of an unused entry.
func (g GUID) IsZero() bool { return g == GUID{} }

// guidFromDisk converts the mixed-endian on-disk form.
func guidFromDisk(b []byte) GUID {
	var g GUID
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:16])
	return g
}

// Partition is one used entry of the table.
type Partition struct {
	// Number is the 1-based index in the entry array (the kernel's partition number).
	Number     int
	Type       GUID
	UUID       GUID
	FirstLBA   uint64
	LastLBA    uint64
	Attributes uint64
	// Name is the entry's UTF-16 name (systemd calls it the label), up to the first NUL.
	Name string
	// Offset and Size are the partition's bytes in the image.
	Offset, Size int64
}

// Table is a validated GPT.
type Table struct {
	SectorSize     int
	DiskGUID       GUID
	FirstUsableLBA uint64
	LastUsableLBA  uint64
	// HeaderLBA is where the header used was found: 1, or the last sector when the primary
	// header was invalid and the backup was used (as libblkid does).
	HeaderLBA uint64
	// PrimaryError says why the primary header was not used ("" when it was).
	PrimaryError string
	// Partitions are the used entries (type not zero) in table order.
	Partitions []Partition
	// Skipped lists used entries that libblkid ignores, with the reason (outside the usable
	// area).
	Skipped []string

	r    io.ReaderAt
	size int64
}

// Section returns a reader of the partition's bytes.
func (t *Table) Section(p *Partition) *io.SectionReader {
	return io.NewSectionReader(t.r, p.Offset, p.Size)
}

// Read validates the GPT of the image r of size bytes. Checks, in order (libblkid's):
//  1. the image is larger than MinImageSize;
//  2. a sector size: "EFI PART" at LBA 1 for one of SectorSizes (the smallest wins);
//  3. the protective MBR: 0x55 0xAA at 510 and a partition record of type 0xEE;
//  4. the header at LBA 1, else the backup header at the last LBA: signature, HeaderSize
//     in [92, sector size], HeaderCRC32, MyLBA equal to where it was read,
//     FirstUsableLBA <= LastUsableLBA <= last LBA, the header outside the usable area;
//  5. the entry array: SizeOfPartitionEntry 128, NumberOfPartitionEntries >= 1, at most
//     MaxEntryArray bytes, inside the image, PartitionEntryArrayCRC32;
//  6. each used entry inside the usable area (else skipped, listed in Skipped).
func Read(r io.ReaderAt, size int64) (*Table, error) {
	if size < MinImageSize {
		return nil, fmt.Errorf("%w: image size is %d bytes; libblkid (and so systemd) ignores partition tables on images smaller than %d bytes", ErrInvalid, size, MinImageSize)
	}
	ss, err := sectorSize(r)
	if err != nil {
		return nil, err
	}
	if err := checkProtectiveMBR(r); err != nil {
		return nil, err
	}
	lastLBA := uint64(size/int64(ss)) - 1
	t := &Table{SectorSize: ss, r: r, size: size}
	perr := t.readHeader(1, lastLBA)
	if perr != nil {
		if errors.Is(perr, errIO) {
			return nil, perr
		}
		berr := t.readHeader(lastLBA, lastLBA)
		if berr != nil {
			return nil, fmt.Errorf("%w (and the backup header at LBA %d: %v)", perr, lastLBA, berr)
		}
		t.PrimaryError = perr.Error()
	}
	return t, nil
}

var errIO = errors.New("I/O error")

// readAt reads exactly len(b) bytes at off.
func readAt(r io.ReaderAt, b []byte, off int64, what string) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s: only %d of %d bytes at offset %d", ErrInvalid, what, n, len(b), off)
	}
	return fmt.Errorf("%w: reading %s at offset %d: %v", errIO, what, off, err)
}

func sectorSize(r io.ReaderAt) (int, error) {
	var sig [8]byte
	var seen []string
	for _, ss := range SectorSizes {
		if err := readAt(r, sig[:], int64(ss), "GPT signature"); err != nil {
			return 0, err
		}
		if string(sig[:]) == "EFI PART" {
			return ss, nil
		}
		seen = append(seen, fmt.Sprintf("%q at %d", sig[:], ss))
	}
	return 0, fmt.Errorf("%w: no \"EFI PART\" signature at LBA 1 for sector sizes %v (found %s)", ErrInvalid, SectorSizes, strings.Join(seen, ", "))
}

// checkProtectiveMBR is libblkid's is_pmbr_valid: the MBR magic and one record of type 0xEE
// (hybrid MBRs are accepted).
func checkProtectiveMBR(r io.ReaderAt) error {
	var mbr [512]byte
	if err := readAt(r, mbr[:], 0, "protective MBR"); err != nil {
		return err
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return fmt.Errorf("%w: protective MBR: boot signature at 510 is % x, want 55 aa", ErrInvalid, mbr[510:512])
	}
	var types []string
	for i := 0; i < 4; i++ {
		typ := mbr[446+16*i+4]
		if typ == 0xEE {
			return nil
		}
		types = append(types, fmt.Sprintf("0x%02x", typ))
	}
	return fmt.Errorf("%w: protective MBR: no partition record of type 0xEE (record types %s)", ErrInvalid, strings.Join(types, ", "))
}

// readHeader validates the header at lba and its entry array, and fills t.
func (t *Table) readHeader(lba, lastLBA uint64) error {
	ss := t.SectorSize
	hdr := make([]byte, ss)
	if err := readAt(t.r, hdr, int64(lba)*int64(ss), fmt.Sprintf("header at LBA %d", lba)); err != nil {
		return err
	}
	where := fmt.Sprintf("header at LBA %d", lba)
	if string(hdr[0:8]) != "EFI PART" {
		return fmt.Errorf("%w: %s: Signature is %q, want \"EFI PART\"", ErrInvalid, where, hdr[0:8])
	}
	le := binary.LittleEndian
	hsz := le.Uint32(hdr[12:16])
	if hsz < headerMin || hsz > uint32(ss) {
		return fmt.Errorf("%w: %s: HeaderSize is %d, want %d to %d (the sector size)", ErrInvalid, where, hsz, headerMin, ss)
	}
	stored := le.Uint32(hdr[16:20])
	sum := crc32.NewIEEE()
	sum.Write(hdr[:16])
	sum.Write([]byte{0, 0, 0, 0})
	sum.Write(hdr[20:hsz])
	if got := sum.Sum32(); got != stored {
		return fmt.Errorf("%w: %s: HeaderCRC32 is 0x%08x, the header's CRC32 is 0x%08x", ErrInvalid, where, stored, got)
	}
	if my := le.Uint64(hdr[24:32]); my != lba {
		return fmt.Errorf("%w: %s: MyLBA is %d, want %d", ErrInvalid, where, my, lba)
	}
	fu, lu := le.Uint64(hdr[40:48]), le.Uint64(hdr[48:56])
	switch {
	case lu < fu:
		return fmt.Errorf("%w: %s: LastUsableLBA %d is before FirstUsableLBA %d", ErrInvalid, where, lu, fu)
	case lu > lastLBA:
		return fmt.Errorf("%w: %s: LastUsableLBA is %d, beyond the image's last LBA %d", ErrInvalid, where, lu, lastLBA)
	case fu < lba && lba < lu:
		return fmt.Errorf("%w: %s: the header lies inside the usable area [%d, %d]", ErrInvalid, where, fu, lu)
	}
	arrayLBA := le.Uint64(hdr[72:80])
	count, esz := le.Uint32(hdr[80:84]), le.Uint32(hdr[84:88])
	arrayCRC := le.Uint32(hdr[88:92])
	if esz != EntrySize {
		return fmt.Errorf("%w: %s: SizeOfPartitionEntry is %d, want %d (the only size libblkid reads)", ErrInvalid, where, esz, EntrySize)
	}
	if count == 0 {
		return fmt.Errorf("%w: %s: NumberOfPartitionEntries is 0", ErrInvalid, where)
	}
	arrayBytes := uint64(count) * uint64(esz)
	if arrayBytes > MaxEntryArray {
		return fmt.Errorf("%w: %s: NumberOfPartitionEntries %d × %d bytes is %d bytes, more than the %d this reader accepts", ErrInvalid, where, count, esz, arrayBytes, MaxEntryArray)
	}
	if arrayLBA > lastLBA || arrayBytes > (lastLBA+1-arrayLBA)*uint64(ss) {
		return fmt.Errorf("%w: %s: the entry array (PartitionEntryLBA %d, %d bytes) ends beyond the image's last LBA %d", ErrInvalid, where, arrayLBA, arrayBytes, lastLBA)
	}
	array := make([]byte, arrayBytes)
	if err := readAt(t.r, array, int64(arrayLBA)*int64(ss), "partition entry array"); err != nil {
		return err
	}
	if got := crc32.ChecksumIEEE(array); got != arrayCRC {
		return fmt.Errorf("%w: %s: PartitionEntryArrayCRC32 is 0x%08x, the array's CRC32 is 0x%08x", ErrInvalid, where, arrayCRC, got)
	}
	t.HeaderLBA, t.FirstUsableLBA, t.LastUsableLBA = lba, fu, lu
	t.DiskGUID = guidFromDisk(hdr[56:72])
	t.Partitions, t.Skipped = nil, nil
	for i := 0; i < int(count); i++ {
		e := array[i*EntrySize : (i+1)*EntrySize]
		typ := guidFromDisk(e[0:16])
		if typ.IsZero() {
			continue
		}
		p := Partition{
			Number:     i + 1,
			Type:       typ,
			UUID:       guidFromDisk(e[16:32]),
			FirstLBA:   le.Uint64(e[32:40]),
			LastLBA:    le.Uint64(e[40:48]),
			Attributes: le.Uint64(e[48:56]),
			Name:       utf16Name(e[56:128]),
		}
		// libblkid ignores an entry outside the usable area (and so does systemd).
		if p.FirstLBA < fu || p.LastLBA > lu || p.LastLBA < p.FirstLBA {
			t.Skipped = append(t.Skipped, fmt.Sprintf("partition %d (type %s): LBAs [%d, %d] are not inside the usable area [%d, %d]", p.Number, p.Type, p.FirstLBA, p.LastLBA, fu, lu))
			continue
		}
		p.Offset = int64(p.FirstLBA) * int64(ss)
		p.Size = int64(p.LastLBA-p.FirstLBA+1) * int64(ss)
		t.Partitions = append(t.Partitions, p)
	}
	return nil
}

// utf16Name decodes a UTF-16LE name up to its first NUL.
func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
