package manifests

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/manifests/erofs"
	"github.com/kairos-io/kairos-firmware/manifests/gpt"
	"github.com/kairos-io/kairos-firmware/manifests/squashfs"
	"github.com/kairos-io/kairos-firmware/manifests/verity"
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
	xattr xattrFunc // nil: the format keeps no xattrs here
	// DDI describes what was read of a GPT disk image (nil for other formats).
	DDI *DDI
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
// Squashfs images report errors.ErrUnsupported: the squashfs reader (package squashfs) does not
// read the xattr table.
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

// Open opens the image at path (a directory, or a squashfs, erofs or GPT disk image file;
// symlinks are followed) into an *ImageFS. A GPT disk image (a DDI) opens as the filesystem
// systemd-sysext would mount from it for this machine's architecture (see openDDI); its
// ImageFS.DDI says which. The io.Closer releases the image file.
func Open(path string) (fs.FS, Format, io.Closer, error) {
	format, err := Detect(path)
	if err != nil {
		return nil, "", nil, err
	}
	if format == FormatDirectory {
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
	var ifs *ImageFS
	if format == FormatGPT {
		ifs, err = openDDI(f, st.Size())
	} else {
		ifs = &ImageFS{}
		ifs.low, ifs.xattr, err = openFilesystem(f, st.Size(), format)
	}
	if err != nil {
		f.Close()
		return nil, "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return ifs, format, f, nil
}

// xattrFunc reads an extended attribute of an entry (nil: the format keeps none).
type xattrFunc func(name, attr string) ([]byte, error)

// openFilesystem opens an erofs or squashfs filesystem of size bytes (a file, or a DDI
// partition).
func openFilesystem(r io.ReaderAt, size int64, format Format) (lowFS, xattrFunc, error) {
	switch format {
	case FormatErofs:
		e, err := erofs.Open(r, size)
		if err != nil {
			return nil, nil, err
		}
		return e, e.Getxattr, nil
	case FormatSquashfs:
		sq, err := squashfs.Open(r, size)
		if err != nil {
			return nil, nil, err
		}
		return sq, nil, nil
	}
	return nil, nil, fmt.Errorf("format %q has no reader", format)
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

// DDI says what Open read from a GPT disk image (a Discoverable Disk Image).
type DDI struct {
	// Partition is the type of the partition read as the image root, as systemd names it
	// ("root-x86-64", "usr-arm64", or "linux-generic"), and Inner its format.
	Partition string
	Inner     Format
	// Usr and UsrInner name the /usr partition mounted on the root partition's /usr, when the
	// DDI has both ("" otherwise).
	Usr      string
	UsrInner Format
	// Partitions are the partitions systemd-sysext uses, with their -verity and -verity-sig
	// siblings (for integrity checks, which Open does not make), and Table the whole table.
	Partitions *gpt.Partitions
	Table      *gpt.Table
}

// openDDI opens a GPT disk image of size bytes as systemd-sysext mounts it
// (dissected_image_mount in src/shared/dissect-image.c, with sysext's flags): the partitions
// gpt.Table.Sysext picks for this machine's architecture; the root partition at the image
// root and a /usr partition on its usr directory; a /usr partition alone under an otherwise
// empty root. Each partition must hold erofs or squashfs. dm-verity is not set up: the data
// partition is read directly, as systemd does when it has no root hash (package
// manifests/verity checks integrity).
func openDDI(r io.ReaderAt, size int64) (*ImageFS, error) {
	table, err := gpt.Read(r, size)
	if err != nil {
		return nil, err
	}
	arch := gpt.HostArch()
	parts, err := table.Sysext(arch)
	if err != nil {
		return nil, fmt.Errorf("%w (host architecture %q)", err, arch)
	}
	ddi := &DDI{Partitions: parts, Table: table}
	open := func(p *gpt.Partition, typ string) (lowFS, xattrFunc, Format, error) {
		var sec io.ReaderAt = table.Section(p)
		size := p.Size
		where := fmt.Sprintf("partition %d (%s)", p.Number, typ)
		// A partition with a verity hash partition is read through its hash tree, as the
		// kernel's dm-verity would serve it: every block the plan reads (the release file,
		// the manifest, the directories) is checked, so a tampered block rejects the image
		// before anything of it is merged, and no decision rests on bytes systemd would
		// refuse. The root hash is the signature's or the partition UUIDs' (Admit checks the
		// signature); the blocks the plan does not read are hashed once it has chosen the
		// image (VerifyData, plan.DecideVerified).
		if tree := verifiedData(table, parts, p); tree != nil {
			sec, size = tree, tree.Size()
		}
		inner, err := DetectFile(where, sec)
		if err != nil {
			return nil, nil, "", err
		}
		if inner != FormatErofs && inner != FormatSquashfs {
			return nil, nil, "", fmt.Errorf("%s holds a %s image; a DDI partition must hold erofs or squashfs", where, inner)
		}
		low, xattr, err := openFilesystem(sec, size, inner)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: %w", where, err)
		}
		return low, xattr, inner, nil
	}
	fsPart, fsType := parts.FS()
	low, xattr, inner, err := open(fsPart, fsType)
	if err != nil {
		return nil, err
	}
	ddi.Partition, ddi.Inner = fsType, inner
	if parts.Root == nil || parts.Usr == nil {
		if parts.Root == nil { // a /usr partition alone
			m := &usrMount{usr: low, usrX: xattr}
			return &ImageFS{low: m, xattr: m.getxattr, DDI: ddi}, nil
		}
		return &ImageFS{low: low, xattr: xattr, DDI: ddi}, nil
	}
	// root and /usr partitions: the usr partition is mounted on the root's usr directory
	ddi.Usr = gpt.Type{Designator: gpt.Usr, Arch: parts.Arch}.String()
	usrLow, usrX, usrInner, err := open(parts.Usr, ddi.Usr)
	if err != nil {
		return nil, err
	}
	ddi.UsrInner = usrInner
	fi, err := low.Lstat("usr")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("partition %d (%s) has no usr directory to mount partition %d (%s) on", fsPart.Number, fsType, parts.Usr.Number, ddi.Usr)
	case err != nil:
		return nil, fmt.Errorf("partition %d (%s): usr: %w", fsPart.Number, fsType, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("partition %d (%s): usr is a %v, not a directory to mount partition %d (%s) on", fsPart.Number, fsType, fi.Mode().Type(), parts.Usr.Number, ddi.Usr)
	}
	m := &usrMount{root: low, usr: usrLow, rootX: xattr, usrX: usrX}
	return &ImageFS{low: m, xattr: m.getxattr, DDI: ddi}, nil
}

// usrMount is the tree of a DDI with a /usr partition: root (nil for an empty root holding
// only the usr directory) with usr's filesystem on usr.
type usrMount struct {
	root, usr   lowFS
	rootX, usrX xattrFunc
}

// route maps a path to the filesystem holding it.
func (m *usrMount) route(name string) (low lowFS, rel string, inUsr bool) {
	if name == "usr" {
		return m.usr, ".", true
	}
	if rest, ok := strings.CutPrefix(name, "usr/"); ok {
		return m.usr, rest, true
	}
	return m.root, name, false
}

func (m *usrMount) Open(name string) (fs.File, error) {
	if name == "." && m.root == nil {
		return &emptyRoot{m: m}, nil
	}
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	low, rel, _ := m.route(name)
	if low == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return low.Open(rel)
}

func (m *usrMount) Lstat(name string) (fs.FileInfo, error) {
	if name == "." && m.root == nil {
		return emptyRootInfo{}, nil
	}
	low, rel, inUsr := m.route(name)
	if low == nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	fi, err := low.Lstat(rel)
	if err == nil && inUsr && rel == "." {
		fi = renamed{fi, "usr"}
	}
	return fi, err
}

func (m *usrMount) ReadLink(name string) (string, error) {
	low, rel, _ := m.route(name)
	if low == nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrNotExist}
	}
	return low.ReadLink(rel)
}

func (m *usrMount) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		low, rel, _ := m.route(name)
		if low == nil {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
		}
		return low.ReadDir(rel)
	}
	usr, err := m.Lstat("usr")
	if err != nil {
		return nil, err
	}
	if m.root == nil {
		return []fs.DirEntry{fs.FileInfoToDirEntry(usr)}, nil
	}
	ents, err := m.root.ReadDir(".")
	for i, e := range ents {
		if e.Name() == "usr" {
			ents[i] = fs.FileInfoToDirEntry(usr)
		}
	}
	return ents, err
}

func (m *usrMount) getxattr(name, attr string) ([]byte, error) {
	x := m.rootX
	rel := name
	if name == "usr" || strings.HasPrefix(name, "usr/") {
		_, rel, _ = m.route(name)
		x = m.usrX
	}
	if x == nil {
		return nil, &fs.PathError{Op: "getxattr", Path: name, Err: errors.ErrUnsupported}
	}
	return x(rel, attr)
}

// renamed gives a filesystem root the name of its mount point.
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string { return r.name }

// emptyRoot is the root directory systemd creates for a DDI with only a /usr partition.
type emptyRoot struct {
	m    *usrMount
	done bool
}

func (e *emptyRoot) Stat() (fs.FileInfo, error) { return emptyRootInfo{}, nil }
func (e *emptyRoot) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: errors.New("is a directory")}
}
func (e *emptyRoot) Close() error { return nil }

// ReadDir lists the single usr entry (fs.ReadDirFile semantics).
func (e *emptyRoot) ReadDir(n int) ([]fs.DirEntry, error) {
	if e.done {
		if n > 0 {
			return nil, io.EOF
		}
		return nil, nil
	}
	e.done = true
	return e.m.ReadDir(".")
}

type emptyRootInfo struct{}

func (emptyRootInfo) Name() string       { return "." }
func (emptyRootInfo) Size() int64        { return 0 }
func (emptyRootInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o755 }
func (emptyRootInfo) ModTime() time.Time { return time.Time{} }
func (emptyRootInfo) IsDir() bool        { return true }
func (emptyRootInfo) Sys() any           { return nil }

// verifiedData returns p's data as a verity tree when the DDI has a hash partition for it and
// the tree checks out against its root hash; nil otherwise (no verity, or a tree Admit will
// refuse with the reason).
func verifiedData(table *gpt.Table, parts *gpt.Partitions, p *gpt.Partition) *verity.Tree {
	hash, sig := parts.RootVerity, parts.RootVeritySig
	if p == parts.Usr {
		hash, sig = parts.UsrVerity, parts.UsrVeritySig
	}
	if hash == nil {
		return nil
	}
	vp := verity.Parts{Data: table.Section(p), DataSize: p.Size, DataUUID: p.UUID.String(),
		Hash: table.Section(hash), HashSize: hash.Size, HashUUID: hash.UUID.String()}
	if sig != nil {
		vp.Sig, vp.SigSize = table.Section(sig), sig.Size
	}
	if _, tree := verity.Inspect(vp, verity.Options{}); tree != nil {
		return tree
	}
	return nil
}
