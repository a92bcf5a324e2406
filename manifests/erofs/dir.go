package erofs

import (
	"bytes"
	"encoding/binary"
	"io/fs"
)

// Directory entry file types (erofs_dirent.file_type).
const (
	ftUnknown = iota
	ftReg
	ftDir
	ftChr
	ftBlk
	ftFifo
	ftSock
	ftSymlink
	ftMax

	direntSize = 12 // erofs_dirent: le64 nid, le16 nameoff, u8 file_type, u8 reserved
	maxNameLen = 255
	maxDirSize = 64 << 20 // refuse to decode absurd directories from corrupt inodes
)

type dirent struct {
	name  string
	nid   uint64
	ftype uint8
}

func (d dirent) mode() fs.FileMode {
	switch d.ftype {
	case ftDir:
		return fs.ModeDir
	case ftSymlink:
		return fs.ModeSymlink
	case ftChr:
		return fs.ModeDevice | fs.ModeCharDevice
	case ftBlk:
		return fs.ModeDevice
	case ftFifo:
		return fs.ModeNamedPipe
	case ftSock:
		return fs.ModeSocket
	}
	return 0
}

// readDir decodes (and caches) the entries of directory ino, sorted by name, without "." and
// "..". A directory is a file of blocks; each block starts with an array of dirents whose
// first nameoff / 12 gives their count, followed by the names, each ending where the next one
// starts (the last one at the block end or at the first NUL of the padding). See
// erofs_fs.h "struct erofs_dirent" and fs/erofs/dir.c.
func (f *FS) readDir(ino *inode) ([]dirent, error) {
	f.mu.Lock()
	ents, ok := f.dirs[ino.nid]
	f.mu.Unlock()
	if ok {
		return ents, nil
	}
	if ino.size > maxDirSize || (ino.layout != layoutCompressedFull && ino.layout != layoutCompressedCompact && ino.size > f.size) {
		return nil, corrupt("directory inode %d: size %d exceeds %d or the image size %d", ino.nid, ino.size, maxDirSize, f.size)
	}
	data := make([]byte, ino.size)
	if _, err := f.newReader(ino).ReadAt(data, 0); err != nil {
		return nil, err
	}
	bs := int(f.sb.BlockSize())
	prev := ""
	for start := 0; start < len(data); start += bs {
		blk := data[start:min(start+bs, len(data))]
		if len(blk) < direntSize {
			return nil, corrupt("directory inode %d: block at %d is %d bytes, shorter than a dirent", ino.nid, start, len(blk))
		}
		le := binary.LittleEndian
		first := int(le.Uint16(blk[8:]))
		if first < direntSize || first%direntSize != 0 || first >= len(blk) {
			return nil, corrupt("directory inode %d: block at %d: first nameoff %d is invalid (block %d bytes)", ino.nid, start, first, len(blk))
		}
		n := first / direntSize
		for i := 0; i < n; i++ {
			d := blk[i*direntSize:]
			off := int(le.Uint16(d[8:]))
			end := len(blk)
			if i+1 < n {
				end = int(le.Uint16(blk[(i+1)*direntSize+8:]))
			}
			if off < first || end > len(blk) || off >= end {
				return nil, corrupt("directory inode %d: block at %d: dirent %d name [%d, %d) is outside [%d, %d)", ino.nid, start, i, off, end, first, len(blk))
			}
			name := blk[off:end]
			if i+1 == n {
				if z := bytes.IndexByte(name, 0); z >= 0 {
					name = name[:z]
				}
			}
			if len(name) == 0 || len(name) > maxNameLen || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 {
				return nil, corrupt("directory inode %d: block at %d: dirent %d has invalid name %q", ino.nid, start, i, name)
			}
			ft := d[10]
			if ft >= ftMax {
				return nil, corrupt("directory inode %d: entry %q has file type %d (max %d)", ino.nid, name, ft, ftMax-1)
			}
			s := string(name)
			if s == "." || s == ".." {
				continue
			}
			// Names are sorted (binary search relies on it, as the kernel's erofs_namei does).
			if s <= prev {
				return nil, corrupt("directory inode %d: entry %q follows %q: names are not sorted", ino.nid, s, prev)
			}
			prev = s
			ents = append(ents, dirent{name: s, nid: le.Uint64(d[0:]), ftype: ft})
		}
	}
	f.mu.Lock()
	f.dirs[ino.nid] = ents
	f.mu.Unlock()
	return ents, nil
}
