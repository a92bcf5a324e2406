package manifests

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/CalebQ42/squashfs"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/manifests/erofs"
)

// lowFS is what each format provides: lexical access, where paths never pass through a
// symlink (Open, Lstat, ReadLink and ReadDir act on the named entry itself). ImageFS adds the
// symlink resolution.
type lowFS interface {
	fs.ReadLinkFS
	fs.ReadDirFS
}

// ImageFS is the tree of an image. Its methods resolve symlinks inside the image the way
// systemd's chase() does with CHASE_AT_RESOLVE_IN_ROOT: absolute targets start again at the
// image root and ".." stops at the root, so nothing outside the image is ever read. Lstat and
// ReadLink do not follow a final symlink. It implements fs.ReadLinkFS, fs.ReadDirFS,
// fs.ReadFileFS and fs.StatFS.
type ImageFS struct {
	low   lowFS
	xattr func(name, attr string) ([]byte, error) // nil: the format keeps no xattrs here
}

// Open opens name, following symlinks inside the image.
func (f *ImageFS) Open(name string) (fs.File, error) {
	p, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	return f.low.Open(p)
}

// Stat describes name, following symlinks inside the image.
func (f *ImageFS) Stat(name string) (fs.FileInfo, error) {
	p, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return f.low.Lstat(p)
}

// Lstat describes name without following a final symlink.
func (f *ImageFS) Lstat(name string) (fs.FileInfo, error) {
	p, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return f.low.Lstat(p)
}

// ReadLink returns the target of the symlink name.
func (f *ImageFS) ReadLink(name string) (string, error) {
	p, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	return f.low.ReadLink(p)
}

// ReadDir lists the directory name, following symlinks inside the image.
func (f *ImageFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	return f.low.ReadDir(p)
}

// ReadFile reads the file name, following symlinks inside the image.
func (f *ImageFS) ReadFile(name string) ([]byte, error) {
	p, err := f.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	return fs.ReadFile(f.low, p)
}

// Getxattr returns the extended attribute attr of name (not following a final symlink).
// Squashfs images report errors.ErrUnsupported: github.com/CalebQ42/squashfs does not expose
// the xattr table.
func (f *ImageFS) Getxattr(name, attr string) ([]byte, error) {
	if f.xattr == nil {
		return nil, &fs.PathError{Op: "getxattr", Path: name, Err: errors.ErrUnsupported}
	}
	p, err := f.resolve("getxattr", name, false)
	if err != nil {
		return nil, err
	}
	return f.xattr(p, attr)
}

func (f *ImageFS) resolve(op, name string, follow bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p, err := chase(f.low, name, follow, false)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: err}
	}
	return p, nil
}

// Open opens the image at path (a directory, or a squashfs or erofs file; symlinks to either
// are followed) into an *ImageFS. The io.Closer releases the image file.
func Open(path string) (fs.FS, Format, io.Closer, error) {
	format, err := Detect(path)
	if err != nil {
		return nil, "", nil, err
	}
	switch format {
	case FormatDirectory:
		root, err := os.OpenRoot(path)
		if err != nil {
			return nil, "", nil, err
		}
		dir := root.Name()
		low, ok := root.FS().(lowFS)
		if !ok {
			root.Close()
			return nil, "", nil, fmt.Errorf("%s: os.Root's FS lacks ReadLink/ReadDir", path)
		}
		xattr := func(name, attr string) ([]byte, error) { return lgetxattr(filepath.Join(dir, name), attr) }
		return &ImageFS{low: low, xattr: xattr}, format, root, nil
	case FormatGPT:
		return nil, format, nil, fmt.Errorf("%s: %w (systemd DDI with GPT partitions; use a bare erofs or squashfs image for now)", path, ErrGPTUnsupported)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", nil, err
	}
	switch format {
	case FormatErofs:
		e, err := erofs.Open(f, st.Size())
		if err != nil {
			f.Close()
			return nil, "", nil, fmt.Errorf("%s: %w", path, err)
		}
		return &ImageFS{low: e, xattr: e.Getxattr}, format, f, nil
	case FormatSquashfs:
		if err := checkSquashfsCompression(path, f); err != nil {
			f.Close()
			return nil, "", nil, err
		}
		r, err := squashfs.NewReader(f)
		if err != nil {
			f.Close()
			return nil, "", nil, fmt.Errorf("%s: squashfs: %w", path, err)
		}
		return &ImageFS{low: squashFS{r.FS}}, format, f, nil
	}
	f.Close()
	return nil, "", nil, fmt.Errorf("%s: format %q has no reader", path, format)
}

// squashFS adapts github.com/CalebQ42/squashfs, whose Open and Stat already act on the named
// entry without following it, to lowFS.
type squashFS struct{ squashfs.FS }

func (s squashFS) Lstat(name string) (fs.FileInfo, error) { return s.FS.Stat(name) }

func (s squashFS) ReadLink(name string) (string, error) {
	f, err := s.FS.OpenFile(name)
	if err != nil {
		return "", err
	}
	if !f.IsSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return f.SymlinkPath(), nil
}

// squashfsLZ4 is the lz4 compression id of the squashfs superblock (le16 at offset 20,
// squashfs_fs.h LZ4_COMPRESSION).
const squashfsLZ4 = 5

// checkSquashfsCompression refuses lz4 squashfs images with a clear error:
// github.com/CalebQ42/squashfs v1.4.1 decodes their blocks as LZ4 frames
// (internal/decompress/lz4.go uses lz4.NewReader) while squashfs-tools writes raw LZ4 blocks,
// so every read fails with "lz4: bad magic number".
func checkSquashfsCompression(path string, f io.ReaderAt) error {
	var b [2]byte
	if _, err := f.ReadAt(b[:], 20); err != nil {
		return fmt.Errorf("%s: squashfs superblock: %w", path, err)
	}
	if c := binary.LittleEndian.Uint16(b[:]); c == squashfsLZ4 {
		return fmt.Errorf("%s: squashfs compression lz4 (id %d) is not supported (the squashfs reader misreads lz4 blocks); use gzip, xz, zstd, lzo or lzma, or erofs", path, c)
	}
	return nil
}

// lgetxattr reads an xattr of a file in a directory image, growing the buffer as needed.
func lgetxattr(path, attr string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, attr, buf)
		switch {
		case errors.Is(err, unix.ERANGE) && len(buf) < 1<<16:
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENODATA):
			return nil, &fs.PathError{Op: "getxattr", Path: path, Err: erofs.ErrNoXattr}
		case err != nil:
			return nil, &fs.PathError{Op: "getxattr", Path: path, Err: err}
		}
		return buf[:n], nil
	}
}
