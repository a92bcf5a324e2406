package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

const (
	dirHeaderSize = 12       // squashfs_dir_header: le32 count-1, le32 start_block, le32 inode_number
	dirEntrySize  = 8        // squashfs_dir_entry: le16 offset, le16 inode delta, le16 type, le16 size-1
	maxDirCount   = 256      // SQUASHFS_DIR_COUNT: entries per header
	maxNameLen    = 256      // SQUASHFS_NAME_LEN
	maxDirSize    = 8 << 20  // refuse to decode absurd directories from corrupt inodes
	dirCacheBytes = 16 << 20 // bound of the decoded directory cache
)

// dirent is a directory entry: a name, the reference of its inode and its basic type.
type dirent struct {
	name string
	ref  uint64
	typ  uint16
}

// dirKey identifies a directory listing: where it starts in the directory table, and its size.
type dirKey struct {
	block  uint32
	offset uint16
	size   int64
}

// readDir decodes (and caches) the entries of directory ino, sorted by name, without "." and
// "..". The listing starts at offset dirOffset of the metadata block at directory table +
// dirBlock and holds size - 3 bytes (the 3 stand for "." and ".."): runs of up to 256 entries,
// each run after a header giving the metadata block of its inodes (squashfs_readdir in
// fs/squashfs/dir.c).
func (f *FS) readDir(ino *inode) ([]dirent, error) {
	key := dirKey{ino.dirBlock, ino.dirOffset, ino.size}
	f.mu.Lock()
	ents, ok := f.dirs[key]
	f.mu.Unlock()
	if ok {
		return ents, nil
	}
	if ino.size > maxDirSize {
		return nil, corrupt("directory inode 0x%x: listing of %d bytes exceeds %d", ino.ref, ino.size, maxDirSize)
	}
	m := metaReader{f: f, blk: int64(f.sb.DirectoryTableStart) + int64(ino.dirBlock), off: int(ino.dirOffset), limit: int64(f.sb.BytesUsed)}
	le := binary.LittleEndian
	var h [dirHeaderSize]byte
	var e [dirEntrySize]byte
	cost := 0
	for length := int64(3); length < ino.size; {
		if err := m.read(h[:]); err != nil {
			return nil, fmt.Errorf("directory inode 0x%x: header at listing byte %d: %w", ino.ref, length-3, err)
		}
		length += dirHeaderSize
		count, block := int64(le.Uint32(h[0:]))+1, le.Uint32(h[4:])
		if count > maxDirCount {
			return nil, corrupt("directory inode 0x%x: header at listing byte %d counts %d entries, more than %d", ino.ref, length-3-dirHeaderSize, count, maxDirCount)
		}
		for ; count > 0; count-- {
			if err := m.read(e[:]); err != nil {
				return nil, fmt.Errorf("directory inode 0x%x: entry at listing byte %d: %w", ino.ref, length-3, err)
			}
			n := int(le.Uint16(e[6:])) + 1
			typ := le.Uint16(e[4:])
			if n > maxNameLen {
				return nil, corrupt("directory inode 0x%x: entry at listing byte %d has a %d-byte name (max %d)", ino.ref, length-3, n, maxNameLen)
			}
			name, err := m.bytes(n)
			if err != nil {
				return nil, fmt.Errorf("directory inode 0x%x: name at listing byte %d: %w", ino.ref, length-3, err)
			}
			length += dirEntrySize + int64(n)
			if bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 || string(name) == "." || string(name) == ".." {
				return nil, corrupt("directory inode 0x%x: invalid entry name %q", ino.ref, name)
			}
			if typ == 0 || typ > typeSock {
				return nil, corrupt("directory inode 0x%x: entry %q has type %d (want 1..%d)", ino.ref, name, typ, typeSock)
			}
			ents = append(ents, dirent{name: string(name), ref: uint64(block)<<16 | uint64(le.Uint16(e[0:])), typ: typ})
			cost += n + 32
		}
	}
	// mksquashfs sorts names with strcmp, as Go compares strings; sort anyway, refuse duplicates
	cmp := func(a, b dirent) int { return strings.Compare(a.name, b.name) }
	if !slices.IsSortedFunc(ents, cmp) {
		slices.SortFunc(ents, cmp)
	}
	for i := 1; i < len(ents); i++ {
		if ents[i].name == ents[i-1].name {
			return nil, corrupt("directory inode 0x%x: entry %q appears twice", ino.ref, ents[i].name)
		}
	}
	f.mu.Lock()
	if f.dirBytes+cost > dirCacheBytes {
		clear(f.dirs)
		f.dirBytes = 0
	}
	f.dirs[key] = ents
	f.dirBytes += cost
	f.mu.Unlock()
	return ents, nil
}

// lookup finds name in the sorted entries.
func lookup(ents []dirent, name string) (dirent, bool) {
	i, ok := slices.BinarySearchFunc(ents, name, func(d dirent, n string) int { return strings.Compare(d.name, n) })
	if !ok {
		return dirent{}, false
	}
	return ents[i], true
}
