package split

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
)

// Format is how images are written.
type Format string

// Formats.
const (
	FormatDirectory Format = "directory" // a directory tree
	FormatErofs     Format = "erofs"     // a bare erofs file system (mkfs.erofs)
	FormatSquashfs  Format = "squashfs"  // a bare squashfs file system (mksquashfs)
	FormatDDI       Format = "ddi"       // a GPT disk image: erofs root + dm-verity (+ signature), systemd-repart
)

// Formats lists the formats split writes.
var Formats = []Format{FormatDirectory, FormatErofs, FormatSquashfs, FormatDDI}

// fileName is the image's name in the output directory: systemd-sysext takes regular files
// only when they end in .raw (and systemd before 256 keeps a .sysext before it in the name).
func (f Format) fileName(name string) string {
	if f == FormatDirectory {
		return name
	}
	return name + ".raw"
}

// tools are the programs a format runs, with their Debian packages.
func (f Format) tools() [][2]string {
	switch f {
	case FormatErofs:
		return [][2]string{{"mkfs.erofs", "erofs-utils"}}
	case FormatSquashfs:
		return [][2]string{{"mksquashfs", "squashfs-tools"}}
	case FormatDDI:
		return [][2]string{{"mkfs.erofs", "erofs-utils"}, {"veritysetup", "cryptsetup-bin"}, {"systemd-repart", "systemd; systemd-repart after Debian 12"}}
	}
	return nil
}

// erofsArgs make a reproducible erofs: lz4hc (kernels with erofs compression, the default, read
// lz4), times at 0, all files owned by root, no extended attributes from the build host, the
// UUID given.
func erofsArgs(uuid, dst, src string) []string {
	return []string{"--quiet", "-zlz4hc", "-T0", "--all-root", "-x-1", "-U", uuid, dst, src}
}

// squashfsArgs make a reproducible squashfs: xz (which the distribution kernels Kairos builds on
// read), times at 0, all files owned by root, no extended attributes.
func squashfsArgs(dst, src string) []string {
	return []string{src, dst, "-noappend", "-quiet", "-no-progress", "-comp", "xz", "-all-root", "-no-xattrs",
		"-mkfs-time", "0", "-all-time", "0"}
}

// build turns the staged tree src into the image dst. work is a scratch directory.
func (s *splitter) build(src, dst, work string, digest [sha256.Size]byte) error {
	uuid := uuidOf(digest)
	switch s.opts.Format {
	case FormatErofs:
		_, err := run("mkfs.erofs", erofsArgs(uuid, dst, src)...)
		return err
	case FormatSquashfs:
		_, err := run("mksquashfs", squashfsArgs(dst, src)...)
		return err
	case FormatDDI:
		fsImage := filepath.Join(work, "root.erofs")
		if _, err := run("mkfs.erofs", erofsArgs(uuid, fsImage, src)...); err != nil {
			return err
		}
		return s.ddi(fsImage, dst, work, digest)
	}
	return fmt.Errorf("unknown format %q", s.opts.Format)
}

// uuidOf makes a version-4-shaped UUID of a content digest.
func uuidOf(digest [sha256.Size]byte) string {
	b := digest[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
