package manifests

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kairos-io/kairos-firmware/manifests/erofs"
)

// Format is how an image stores its tree.
type Format string

// Formats recognised by content.
const (
	FormatDirectory Format = "directory"
	FormatSquashfs  Format = "squashfs"
	FormatErofs     Format = "erofs"
	FormatGPT       Format = "gpt"
)

// Magic numbers, checked in this order (the first match wins):
//   - squashfs: "hsqs" at 0 (SQUASHFS_MAGIC 0x73717368 little endian, linux/magic.h);
//   - GPT: "EFI PART" at LBA 1 for 512-, 1024-, 2048- or 4096-byte sectors (UEFI spec 5.3.2,
//     the sizes systemd probes); checked before erofs because a DDI's partition entries occupy
//     offset 1024; package gpt then validates the table (Open);
//   - erofs: 0xE0F5E1E2 little endian at 1024 (EROFS_SUPER_MAGIC_V1, erofs_fs.h);
//   - ext4, only to name it in the error: 0xEF53 at 1024+56 (s_magic).
const (
	sniffLen    = 4096 + 8
	gptMagic    = "EFI PART"
	squashMagic = "hsqs"
	ext4MagicAt = 1024 + 56
)

// DetectFile returns the format of the regular file f by its content.
func DetectFile(name string, f io.ReaderAt) (Format, error) {
	head := make([]byte, sniffLen)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%s: reading the image header: %w", name, err)
	}
	head = head[:n]
	at := func(off int, magic []byte) bool {
		return len(head) >= off+len(magic) && bytes.Equal(head[off:off+len(magic)], magic)
	}
	var erofsMagic, ext4Magic [4]byte
	binary.LittleEndian.PutUint32(erofsMagic[:], erofs.SuperMagic)
	binary.LittleEndian.PutUint16(ext4Magic[:2], 0xEF53)
	switch {
	case at(0, []byte(squashMagic)):
		return FormatSquashfs, nil
	case at(512, []byte(gptMagic)) || at(1024, []byte(gptMagic)) || at(2048, []byte(gptMagic)) || at(4096, []byte(gptMagic)):
		return FormatGPT, nil
	case at(erofs.SuperOffset, erofsMagic[:]):
		return FormatErofs, nil
	case at(ext4MagicAt, ext4Magic[:2]):
		return "", fmt.Errorf("%s: ext4 image: not supported (only directory, squashfs, erofs and GPT disk images are)", name)
	}
	return "", fmt.Errorf("%s: unknown image format (%d bytes; first bytes % x): want a directory, squashfs (\"hsqs\" at 0), erofs (0x%08X at 1024) or a GPT disk image (\"EFI PART\" at 512)", name, n, head[:min(16, len(head))], uint32(erofs.SuperMagic))
}

// Detect returns the format of the image at path, following symlinks.
func Detect(path string) (Format, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return FormatDirectory, nil
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a directory or regular file (mode %v)", path, st.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return DetectFile(path, f)
}
