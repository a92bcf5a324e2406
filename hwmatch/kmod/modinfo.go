package kmod

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	// The squashfs reader already links this xz decoder; one is enough for the binary budget.
	"github.com/mikelolasagasti/xz"
)

// maxModuleSize bounds how much of one decompressed module is read (the largest module of a
// distribution kernel, amdgpu, is about 20 MiB unstripped); a corrupt or hostile file cannot make
// us allocate more.
const maxModuleSize = 256 << 20

var (
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicGzip = []byte{0x1f, 0x8b}
)

func isCompressed(head []byte) bool {
	return bytes.HasPrefix(head, magicXZ) || bytes.HasPrefix(head, magicZstd) || bytes.HasPrefix(head, magicGzip)
}

// decompressModule returns the ELF bytes of a module file. The format is told by magic bytes,
// not by the .ko.xz/.ko.zst/.ko.gz suffix, as kmod does (libkmod/libkmod-file.c).
func decompressModule(data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case bytes.HasPrefix(data, magicXZ):
		xr, err := xz.NewReader(bytes.NewReader(data), 0)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		r = xr
	case bytes.HasPrefix(data, magicZstd):
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(data, magicGzip):
		gr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = gr
	default:
		return data, nil
	}
	out, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxModuleSize {
		return nil, fmt.Errorf("decompressed module larger than %d bytes", maxModuleSize)
	}
	return out, nil
}

// modinfoValues returns every value of key in the module's .modinfo section, in order. The
// section is a sequence of NUL-terminated "key=value" strings; a key such as "firmware" repeats
// once per MODULE_FIRMWARE() line (include/linux/module.h), so all of them are kept.
func modinfoValues(r io.ReaderAt, key string) ([]string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".modinfo: %w", err)
	}
	prefix := []byte(key + "=")
	var values []string
	for _, rec := range bytes.Split(data, []byte{0}) {
		if bytes.HasPrefix(rec, prefix) {
			values = append(values, string(rec[len(prefix):]))
		}
	}
	return values, nil
}
