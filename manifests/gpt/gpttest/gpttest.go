// Package gpttest builds GPT disk images for tests: synthetic tables written here (Write),
// and real systemd DDIs made by systemd-repart (Repart), the tool AuroraBoot's sysext output
// uses. Tests that need a missing tool skip, or fail under CI (testkernel.Missing).
package gpttest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// Entry is one partition of a synthetic table.
type Entry struct {
	Type       string // type GUID, textual form
	UUID       string // "" for a fixed one derived from the index
	FirstLBA   uint64
	LastLBA    uint64
	Attributes uint64
	Name       string
}

// Table describes a synthetic GPT; zero fields get the usual values (128 entries of 128
// bytes at LBA 2, usable area from after the array to before the backup array).
type Table struct {
	SectorSize int   // 512 if 0
	Size       int64 // image size in bytes
	Entries    []Entry
	// EntryCount and EntrySize override NumberOfPartitionEntries and SizeOfPartitionEntry.
	EntryCount, EntrySize uint32
	// FirstUsable and LastUsable override the header's usable area (0: default).
	FirstUsable, LastUsable uint64
	// Mutate, if set, edits the primary header and entry array before the CRCs are computed
	// (NoCRC leaves both CRCs as Mutate set them).
	Mutate func(hdr, array []byte)
	NoCRC  bool
	// NoBackup leaves the backup header out.
	NoBackup bool
}

// Write returns the image bytes: protective MBR, primary header and entry array, and the
// backup entry array and header at the end.
func (tb Table) Write() []byte {
	ss := tb.SectorSize
	if ss == 0 {
		ss = 512
	}
	count, esz := tb.EntryCount, tb.EntrySize
	if count == 0 {
		count = 128
	}
	if esz == 0 {
		esz = 128
	}
	img := make([]byte, tb.Size)
	last := uint64(tb.Size/int64(ss)) - 1
	// protective MBR: one record of type 0xEE covering the disk
	rec := img[446:462]
	rec[4] = 0xEE
	binary.LittleEndian.PutUint32(rec[8:12], 1)
	binary.LittleEndian.PutUint32(rec[12:16], uint32(min(last, 0xFFFFFFFF)))
	img[510], img[511] = 0x55, 0xAA

	arrayBytes := uint64(count) * uint64(esz)
	arraySectors := (arrayBytes + uint64(ss) - 1) / uint64(ss)
	fu, lu := 2+arraySectors, last-1-arraySectors
	if tb.FirstUsable != 0 {
		fu = tb.FirstUsable
	}
	if tb.LastUsable != 0 {
		lu = tb.LastUsable
	}
	array := make([]byte, min(arrayBytes, 1<<24))
	for i, e := range tb.Entries {
		if uint64(i+1)*uint64(esz) > uint64(len(array)) || esz < 128 {
			break
		}
		if e.Type == "" {
			continue // an unused entry
		}
		b := array[uint64(i)*uint64(esz):]
		putGUID(b[0:16], e.Type)
		id := e.UUID
		if id == "" {
			id = fmt.Sprintf("%08x-0000-4000-8000-00000000%04x", 0x6b667700+i, i)
		}
		putGUID(b[16:32], id)
		binary.LittleEndian.PutUint64(b[32:40], e.FirstLBA)
		binary.LittleEndian.PutUint64(b[40:48], e.LastLBA)
		binary.LittleEndian.PutUint64(b[48:56], e.Attributes)
		for k, c := range utf16.Encode([]rune(e.Name)) {
			if 56+2*k+2 > 128 {
				break
			}
			binary.LittleEndian.PutUint16(b[56+2*k:], c)
		}
	}
	header := func(my, alt, arrayLBA uint64) []byte {
		h := make([]byte, ss)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:12], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:16], 92)
		binary.LittleEndian.PutUint64(h[24:32], my)
		binary.LittleEndian.PutUint64(h[32:40], alt)
		binary.LittleEndian.PutUint64(h[40:48], fu)
		binary.LittleEndian.PutUint64(h[48:56], lu)
		putGUID(h[56:72], "c0ffee00-1234-4567-89ab-cdef01234567")
		binary.LittleEndian.PutUint64(h[72:80], arrayLBA)
		binary.LittleEndian.PutUint32(h[80:84], count)
		binary.LittleEndian.PutUint32(h[84:88], esz)
		return h
	}
	seal := func(h, array []byte) {
		binary.LittleEndian.PutUint32(h[88:92], crc32.ChecksumIEEE(array))
		binary.LittleEndian.PutUint32(h[16:20], 0)
		hsz := binary.LittleEndian.Uint32(h[12:16])
		if hsz > uint32(len(h)) {
			hsz = 92
		}
		binary.LittleEndian.PutUint32(h[16:20], crc32.ChecksumIEEE(h[:hsz]))
	}
	if !tb.NoBackup {
		backupArray := last - arraySectors
		h := header(last, 1, backupArray)
		seal(h, array)
		copy(img[int64(last)*int64(ss):], h)
		copy(img[int64(backupArray)*int64(ss):], array)
	}
	h := header(1, last, 2)
	pa := append([]byte(nil), array...)
	if !tb.NoCRC {
		if tb.Mutate != nil {
			tb.Mutate(h, pa)
		}
		seal(h, pa)
	} else {
		seal(h, pa)
		if tb.Mutate != nil {
			tb.Mutate(h, pa)
		}
	}
	copy(img[ss:], h)
	copy(img[2*ss:], pa)
	return img
}

// putGUID writes a textual GUID in GPT's mixed-endian form.
func putGUID(b []byte, s string) {
	var raw [16]byte
	hex := strings.ReplaceAll(s, "-", "")
	for i := range raw {
		fmt.Sscanf(hex[2*i:2*i+2], "%02x", &raw[i])
	}
	b[0], b[1], b[2], b[3] = raw[3], raw[2], raw[1], raw[0]
	b[4], b[5] = raw[5], raw[4]
	b[6], b[7] = raw[7], raw[6]
	copy(b[8:16], raw[8:])
}

// Part is one partition of a DDI built by Repart: a repart.d [Partition] section.
type Part struct {
	Type  string // Type=: root, usr, root-verity, root-verity-sig, root-arm64, linux-generic, ...
	Label string // Label= (the GPT name)
	// CopyBlocks copies this file (an erofs or squashfs image) into the partition.
	CopyBlocks string
	// Format and CopyFiles make a filesystem from a directory ("squashfs", "src:/").
	Format, CopyFiles string
	// Verity is data, hash or signature; VerityMatchKey pairs them.
	Verity, VerityMatchKey string
	// Extra lines for the section, e.g. "NoAuto=yes".
	Extra []string
}

// Repart builds the DDI dst with systemd-repart (as AuroraBoot does) from parts. A partition
// with Verity=signature gets a throw-away key and certificate made with openssl.
func Repart(t testing.TB, dst string, parts []Part) {
	t.Helper()
	repart := testkernel.Tool(t, "systemd-repart")
	defs := t.TempDir()
	signed := false
	for i, p := range parts {
		var b strings.Builder
		b.WriteString("[Partition]\nType=" + p.Type + "\n")
		for _, kv := range [][2]string{{"Label", p.Label}, {"CopyBlocks", p.CopyBlocks}, {"Format", p.Format},
			{"CopyFiles", p.CopyFiles}, {"Verity", p.Verity}, {"VerityMatchKey", p.VerityMatchKey}} {
			if kv[1] != "" {
				b.WriteString(kv[0] + "=" + kv[1] + "\n")
			}
		}
		for _, l := range p.Extra {
			b.WriteString(l + "\n")
		}
		signed = signed || p.Verity == "signature"
		if err := os.WriteFile(filepath.Join(defs, fmt.Sprintf("%02d-%s.conf", 10*(i+1), p.Type)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--definitions=" + defs, "--empty=create", "--size=auto", "--dry-run=no",
		"--seed=e2a40bf9-73f1-4278-9160-49c031e7aef8", "--pretty=no", "--no-pager"}
	if signed {
		key, cert := KeyPair(t)
		args = append(args, "--private-key="+key, "--certificate="+cert)
	}
	args = append(args, dst)
	cmd := exec.Command(repart, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-repart %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// KeyPair makes a self-signed RSA key and certificate (PEM) with openssl.
func KeyPair(t testing.TB) (key, cert string) {
	t.Helper()
	openssl := testkernel.Tool(t, "openssl")
	dir := t.TempDir()
	key, cert = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	out, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
		"-out", cert, "-days", "30", "-subj", "/CN=kairos-firmware-test").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	return key, cert
}
