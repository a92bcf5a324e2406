package squashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/kairos-io/kairos-firmware/manifests/fsfile"
)

// FS is a read-only squashfs image. It is safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64
	sb   *Superblock
	dec  *decoder

	mu        sync.Mutex
	meta      map[int64]metaBlock // decoded metadata blocks by disk position
	dirs      map[dirKey][]dirent // decoded directories
	dirBytes  int                 // about what dirs holds, in bytes
	fragIndex map[uint32]int64    // fragment table index entries
	blocks    []cachedBlock       // last decoded data and fragment blocks, most recent first
}

// FS implements these io/fs interfaces.
var _ interface {
	fs.ReadLinkFS
	fs.ReadDirFS
	fs.ReadFileFS
	fs.StatFS
} = (*FS)(nil)

// Open reads the superblock, the compressor options and the root inode of the image r of
// size bytes.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb, err := readSuperblock(r, size)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, sb: sb, dec: newDecoder(sb),
		meta: map[int64]metaBlock{}, dirs: map[dirKey][]dirent{}, fragIndex: map[uint32]int64{}}
	if err := f.readCompOptions(); err != nil {
		return nil, err
	}
	f.dec = newDecoder(sb) // again: xz options bound the dictionary
	root, err := f.readInode(sb.RootInode)
	if err != nil {
		return nil, fmt.Errorf("root inode: %w", err)
	}
	if !root.isDir() {
		return nil, corrupt("root inode 0x%x has type %d, not a directory", sb.RootInode, root.typ)
	}
	return f, nil
}

// Superblock returns the parsed superblock.
func (f *FS) Superblock() Superblock { return *f.sb }

// readFull reads len(b) bytes at off, reporting a short image as corruption.
func (f *FS) readFull(b []byte, off int64, what string) error {
	if off < 0 || off+int64(len(b)) > f.size || off+int64(len(b)) < off {
		return corrupt("%s: bytes [%d, %d) are outside the image (%d bytes)", what, off, off+int64(len(b)), f.size)
	}
	if _, err := f.r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && off+int64(len(b)) == f.size) {
		return fmt.Errorf("squashfs: reading %s at %d: %w", what, off, err)
	}
	return nil
}

// walk resolves name (an io/fs path) lexically from the root, never following symlinks. A
// directory whose listing is also one of its ancestors' is a loop and an error, so that a
// corrupt image cannot make a tree walk endless.
func (f *FS) walk(op, name string) (*inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	ino, err := f.readInode(f.sb.RootInode)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	var seen []dirKey
	rest := name
	if name == "." {
		rest = ""
	}
	for rest != "" {
		var elem string
		elem, rest, _ = cut(rest)
		if !ino.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: errNotDir}
		}
		seen = append(seen, dirKey{ino.dirBlock, ino.dirOffset, ino.size})
		ents, err := f.readDir(ino)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		d, ok := lookup(ents, elem)
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if ino, err = f.readInode(d.ref); err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if ino.kind() != d.typ {
			return nil, &fs.PathError{Op: op, Path: name, Err: corrupt("entry %q has type %d, its inode 0x%x type %d", elem, d.typ, d.ref, ino.typ)}
		}
		if ino.isDir() && slices.Contains(seen, dirKey{ino.dirBlock, ino.dirOffset, ino.size}) {
			return nil, &fs.PathError{Op: op, Path: name, Err: corrupt("directory loop: entry %q is the listing of one of its ancestors", elem)}
		}
	}
	return ino, nil
}

var errNotDir = errors.New("not a directory")

// maxReadFile bounds what ReadFile allocates from an inode's claimed size.
const maxReadFile = 1 << 30

func cut(p string) (elem, rest string, ok bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

// Open opens name without following symlinks (see the package comment).
func (f *FS) Open(name string) (fs.File, error) {
	ino, err := f.walk("open", name)
	if err != nil {
		return nil, err
	}
	fi := &fileInfo{name: path.Base(name), ino: ino}
	if ino.isDir() {
		return &dirFile{fs: f, info: fi}, nil
	}
	return &file{info: fi, rd: f.newReader(ino)}, nil
}

// Lstat describes name without following a final symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	ino, err := f.walk("lstat", name)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), ino: ino}, nil
}

// Stat is Lstat: this FS never follows symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) { return f.Lstat(name) }

// ReadLink returns the target of the symlink name.
func (f *FS) ReadLink(name string) (string, error) {
	ino, err := f.walk("readlink", name)
	if err != nil {
		return "", err
	}
	if !ino.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return ino.target, nil
}

// ReadDir lists the directory name, sorted by name, without "." and "..".
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	ino, err := f.walk("readdir", name)
	if err != nil {
		return nil, err
	}
	if !ino.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	ents, err := f.readDir(ino)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, &dirEntry{fs: f, d: e})
	}
	return out, nil
}

// ReadFile returns the content of the regular file name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	ino, err := f.walk("readfile", name)
	if err != nil {
		return nil, err
	}
	if !ino.isReg() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fmt.Errorf("not a regular file (mode %v)", ino.fileMode())}
	}
	if ino.size > maxReadFile {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fmt.Errorf("%d bytes, more than ReadFile reads (%d); use Open", ino.size, maxReadFile)}
	}
	b := make([]byte, ino.size)
	if _, err := f.newReader(ino).ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return b, nil
}

// fileInfo implements fs.FileInfo.
type fileInfo struct {
	name string
	ino  *inode
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.ino.size }
func (i *fileInfo) Mode() fs.FileMode  { return i.ino.fileMode() }
func (i *fileInfo) ModTime() time.Time { return i.ino.modTime() }
func (i *fileInfo) IsDir() bool        { return i.ino.isDir() }

// Sys returns the inode's numbers.
func (i *fileInfo) Sys() any {
	return &Stat{Inode: i.ino.number, Ref: i.ino.ref, Type: i.ino.typ, Nlink: i.ino.nlink, Rdev: i.ino.rdev, Fragment: i.ino.frag != invalidFrag && i.ino.isReg()}
}

// Stat is what fileInfo.Sys returns.
type Stat struct {
	Inode    uint32 // inode number
	Ref      uint64 // inode reference (metadata block << 16 | offset)
	Type     uint16 // on-disk inode type: 1..7 basic, 8..14 extended
	Nlink    uint32
	Rdev     uint32 // devices: major/minor as stored (the kernel decodes it with new_decode_dev)
	Fragment bool   // a regular file whose tail is in a fragment block
}

// file is an open non-directory.
type file struct {
	info *fileInfo
	rd   *reader
	off  int64
}

func (fl *file) Stat() (fs.FileInfo, error) { return fl.info, nil }
func (fl *file) Close() error               { return nil }

func (fl *file) Read(p []byte) (int, error) {
	if !fl.info.ino.isReg() {
		return 0, &fs.PathError{Op: "read", Path: fl.info.name, Err: fmt.Errorf("not a regular file (mode %v)", fl.info.Mode())}
	}
	n, err := fl.rd.ReadAt(p, fl.off)
	fl.off += int64(n)
	return n, err
}

// ReadAt implements io.ReaderAt for regular files.
func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	if !fl.info.ino.isReg() {
		return 0, &fs.PathError{Op: "read", Path: fl.info.name, Err: fmt.Errorf("not a regular file (mode %v)", fl.info.Mode())}
	}
	return fl.rd.ReadAt(p, off)
}

// Seek implements io.Seeker.
func (fl *file) Seek(offset int64, whence int) (int64, error) {
	off, err := fsfile.Seek(fl.info.name, fl.off, fl.info.ino.size, offset, whence)
	if err == nil {
		fl.off = off
	}
	return off, err
}

// dirFile is an open directory.
type dirFile struct {
	fs   *FS
	info *fileInfo
	ents []dirent
	read bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.fs.readDir(d.info.ino)
		if err != nil {
			return nil, err
		}
		d.ents, d.read = ents, true
	}
	page, err := fsfile.Page(&d.ents, n)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(page))
	for _, e := range page {
		out = append(out, &dirEntry{fs: d.fs, d: e})
	}
	return out, nil
}

type dirEntry struct {
	fs *FS
	d  dirent
}

func (e *dirEntry) Name() string      { return e.d.name }
func (e *dirEntry) IsDir() bool       { return e.d.typ == typeDir }
func (e *dirEntry) Type() fs.FileMode { return typeMode(e.d.typ) }
func (e *dirEntry) Info() (fs.FileInfo, error) {
	ino, err := e.fs.readInode(e.d.ref)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: e.d.name, ino: ino}, nil
}
