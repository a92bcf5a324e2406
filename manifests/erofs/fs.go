package erofs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/kairos-io/kairos-firmware/manifests/fsfile"
)

// FS is a read-only EROFS image. It is safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64
	sb   *Superblock

	mu     sync.Mutex
	dirs   map[uint64][]dirent // decoded directories by nid
	packed *reader             // packed inode (fragments), opened on first use
	blocks map[int64][]byte    // metadata blocks by number (see readMeta)
}

// metaCacheBlocks bounds the metadata block cache (4 MiB with 4 KiB blocks).
const metaCacheBlocks = 1024

// Open reads the superblock and the root inode of the image r of size bytes.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb, err := readSuperblock(r, size)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, sb: sb, dirs: map[uint64][]dirent{}, blocks: map[int64][]byte{}}
	root, err := f.readInode(sb.RootNID)
	if err != nil {
		return nil, fmt.Errorf("root inode: %w", err)
	}
	if !root.isDir() {
		return nil, corrupt("root inode %d has mode 0%o, not a directory", sb.RootNID, root.mode)
	}
	return f, nil
}

// Superblock returns the parsed superblock.
func (f *FS) Superblock() Superblock { return *f.sb }

// readFull reads len(b) bytes at off, reporting a short image as corruption of what (nid).
func (f *FS) readFull(b []byte, off int64, what string, nid uint64) error {
	if off < 0 || off+int64(len(b)) > f.size || off+int64(len(b)) < off {
		return corrupt("%s of inode %d: bytes [%d, %d) are outside the image (%d bytes)", what, nid, off, off+int64(len(b)), f.size)
	}
	if _, err := f.r.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && off+int64(len(b)) == f.size) {
		return fmt.Errorf("erofs: reading %s of inode %d at %d: %w", what, nid, off, err)
	}
	return nil
}

// readMeta is readFull for small metadata (inodes, xattrs, indexes): it serves them from a
// cache of whole blocks, so walking a tree costs one read per metadata block, not per inode.
func (f *FS) readMeta(b []byte, off int64, what string, nid uint64) error {
	bs := f.sb.BlockSize()
	blk := off / bs
	if off < 0 || int64(len(b)) > bs || (off+int64(len(b))-1)/bs != blk || (blk+1)*bs > f.size {
		return f.readFull(b, off, what, nid)
	}
	f.mu.Lock()
	data, ok := f.blocks[blk]
	f.mu.Unlock()
	if !ok {
		data = make([]byte, bs)
		if err := f.readFull(data, blk*bs, what, nid); err != nil {
			return err
		}
		f.mu.Lock()
		if len(f.blocks) >= metaCacheBlocks {
			clear(f.blocks)
		}
		f.blocks[blk] = data
		f.mu.Unlock()
	}
	copy(b, data[off-blk*bs:])
	return nil
}

// walk resolves name (an io/fs path) lexically from the root, never following symlinks.
func (f *FS) walk(op, name string) (*inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	ino, err := f.readInode(f.sb.RootNID)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if name == "." {
		return ino, nil
	}
	rest := name
	for rest != "" {
		var elem string
		elem, rest, _ = cut(rest)
		if !ino.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: errNotDir}
		}
		ents, err := f.readDir(ino)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		i := sort.Search(len(ents), func(i int) bool { return ents[i].name >= elem })
		if i == len(ents) || ents[i].name != elem {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if ino, err = f.readInode(ents[i].nid); err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
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
	return &file{fs: f, info: fi, rd: f.newReader(ino)}, nil
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
	b := make([]byte, ino.size)
	if _, err := f.newReader(ino).ReadAt(b, 0); err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(b), nil
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
func (i *fileInfo) ModTime() time.Time { return i.ino.mtime }
func (i *fileInfo) IsDir() bool        { return i.ino.isDir() }

// Sys returns the inode's Stat_t-like numbers.
func (i *fileInfo) Sys() any {
	return &Stat{NID: i.ino.nid, Nlink: i.ino.nlink, UID: i.ino.uid, GID: i.ino.gid, Layout: i.ino.layout}
}

// Stat is what fileInfo.Sys returns.
type Stat struct {
	NID      uint64
	Nlink    uint32
	UID, GID uint32
	Layout   uint8 // on-disk data layout (0 plain, 1/3 compressed, 2 inline, 4 chunked)
}

// file is an open non-directory.
type file struct {
	fs   *FS
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
func (fl *file) ReadAt(p []byte, off int64) (int, error) { return fl.rd.ReadAt(p, off) }

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
func (e *dirEntry) IsDir() bool       { return e.d.ftype == ftDir }
func (e *dirEntry) Type() fs.FileMode { return e.d.mode() }
func (e *dirEntry) Info() (fs.FileInfo, error) {
	ino, err := e.fs.readInode(e.d.nid)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: e.d.name, ino: ino}, nil
}
