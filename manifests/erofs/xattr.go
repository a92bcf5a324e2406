package erofs

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"strings"
)

// ErrNoXattr is returned by Getxattr when the attribute is absent (ENODATA).
var ErrNoXattr = errors.New("no such extended attribute")

// Short xattr name prefixes by e_name_index (erofs_fs.h, fs/erofs/xattr.c).
var xattrPrefixes = map[uint8]string{
	1: "user.",
	2: "system.posix_acl_access",
	3: "system.posix_acl_default",
	4: "trusted.",
	6: "security.",
}

const (
	xattrEntrySize  = 4    // erofs_xattr_entry: u8 name_len, u8 name_index, le16 value_size
	xattrLongPrefix = 0x80 // EROFS_XATTR_LONG_PREFIX: index into the long prefix table
)

// Getxattr returns the value of the extended attribute attr of name (not following symlinks).
// Inline entries follow the 12-byte erofs_xattr_ibody_header and its shared xattr ids; shared
// entries live at xattr_blkaddr + 4 * id. Entries naming a long prefix are skipped.
func (f *FS) Getxattr(name, attr string) ([]byte, error) {
	ino, err := f.walk("getxattr", name)
	if err != nil {
		return nil, err
	}
	if ino.xattrIsize == 0 {
		return nil, &fs.PathError{Op: "getxattr", Path: name, Err: ErrNoXattr}
	}
	body := make([]byte, ino.xattrIsize)
	if err := f.readMeta(body, ino.pos+ino.isize, "xattr body", ino.nid); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	shared := int(body[4])
	if xattrIbodyHeaderSize+4*shared > len(body) {
		return nil, corrupt("inode %d: %d shared xattrs do not fit the %d-byte xattr body", ino.nid, shared, len(body))
	}
	// shared entries first, then the inline ones, as erofs_getxattr looks them up
	for i := 0; i < shared; i++ {
		id := le.Uint32(body[xattrIbodyHeaderSize+4*i:])
		pos := int64(f.sb.XattrBlkAddr)<<f.sb.BlkSzBits + int64(id)*4
		var hdr [xattrEntrySize]byte
		if err := f.readMeta(hdr[:], pos, "shared xattr", ino.nid); err != nil {
			return nil, err
		}
		ent := make([]byte, xattrEntrySize+int(hdr[0])+int(le.Uint16(hdr[2:])))
		if err := f.readFull(ent, pos, "shared xattr", ino.nid); err != nil {
			return nil, err
		}
		if v, ok := matchXattr(ent, attr); ok {
			return v, nil
		}
	}
	rest := body[xattrIbodyHeaderSize+4*shared:]
	for len(rest) >= xattrEntrySize {
		size := xattrEntrySize + int(rest[0]) + int(le.Uint16(rest[2:]))
		if size > len(rest) {
			return nil, corrupt("inode %d: inline xattr entry of %d bytes overruns the xattr body (%d left)", ino.nid, size, len(rest))
		}
		if v, ok := matchXattr(rest[:size], attr); ok {
			return v, nil
		}
		rest = rest[min(len(rest), (size+3)&^3):]
	}
	return nil, &fs.PathError{Op: "getxattr", Path: name, Err: ErrNoXattr}
}

func matchXattr(ent []byte, attr string) ([]byte, bool) {
	nameLen, idx := int(ent[0]), ent[1]
	if idx&xattrLongPrefix != 0 {
		return nil, false
	}
	prefix, ok := xattrPrefixes[idx]
	if !ok || !strings.HasPrefix(attr, prefix) || attr[len(prefix):] != string(ent[xattrEntrySize:xattrEntrySize+nameLen]) {
		return nil, false
	}
	return append([]byte(nil), ent[xattrEntrySize+nameLen:]...), true
}
