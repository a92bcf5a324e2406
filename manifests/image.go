package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// Image is what one extension image offers.
type Image struct {
	// Name is the image name as systemd-sysext computes it (see ImageName).
	Name string
	// Path is the image as given (in a store scan: the entry in the store directory).
	Path string
	// Target is the file or directory Path resolves to when Path is a symlink, "" otherwise.
	Target string
	Format Format
	// Inner is, for a GPT disk image (Format "gpt"), the format of the partition read as the
	// image root (erofs or squashfs), and Partition its type, e.g. "root-x86-64" (see
	// ImageFS.DDI); both are "" for other formats.
	Inner     Format
	Partition string
	// RootHashes are, for a DDI, the dm-verity root hashes Admit checked the hash trees
	// against, by GPT partition number of the data partition. Merge sets dm-verity up with
	// them (a partition with a hash partition is never mounted without); nil until Admit.
	RootHashes map[int][]byte
	// ReleasePath is the extension-release file used, relative to the image root.
	ReleasePath string
	// Release holds the extension-release assignments.
	Release map[string]string
	// Firmware lists the firmware files, ordered by Name then the kernel's lookup order.
	Firmware []FirmwareFile
	// Modules lists kernel modules; only a manifest provides them.
	Modules []Module
	// FromManifest says Firmware and Modules come from the embedded manifest.
	FromManifest bool
	// Problems lists entries under usr/lib/firmware that provide nothing (tree walk only).
	Problems []Problem
}

// Read opens the image at path on the real file system and describes it; see ReadEntry.
func Read(path string) (*Image, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	img, err := ReadEntry(&hostfs.Root{Dir: "/", FS: vfs.OSFS}, abs)
	if img != nil {
		img.Path = path
	}
	return img, err
}

// ReadEntry describes the image at p, an absolute path under root (a store entry, possibly a
// symlink: Kairos' enable links point into the flat store, and resolve inside the root). The
// image is named after the entry, as systemd-sysext names what it finds in a search directory.
// Checks, in order: the name rule, the format, no usr/lib/os-release (systemd-sysext refuses
// such images), the extension-release file, the firmware hierarchy (real directories, no
// usr/lib/firmware/updates), then the manifest if present, else the firmware tree.
func ReadEntry(root *hostfs.Root, p string) (*Image, error) {
	lst, err := root.FS.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, unwrapPathError(err))
	}
	img := &Image{Path: p}
	resolved := p
	if lst.Mode()&fs.ModeSymlink != 0 {
		if resolved, err = root.Resolve(p); err != nil {
			return nil, fmt.Errorf("%s: resolving the symlink: %w", p, err)
		}
		img.Target = resolved
	}
	real := root.Real(resolved)
	st, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, unwrapPathError(err))
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %v is neither a directory nor a regular file", p, st.Mode().Type())
	}
	if img.Name, err = ImageName(p, st.IsDir()); err != nil {
		return nil, err
	}
	fsys, format, closer, err := Open(real)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	defer closer.Close()
	img.Format = format
	ifs := fsys.(*ImageFS)
	if ifs.DDI != nil {
		img.Inner, img.Partition = ifs.DDI.Inner, ifs.DDI.Partition
	}
	if err := img.read(ifs); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return img, nil
}

func (img *Image) read(fsys *ImageFS) error {
	// systemd chases the path (extension_has_forbidden_content, src/shared/extension-util.c):
	// a dangling symlink there is no os-release
	if _, err := fsys.Stat(hostOSRelease); err == nil {
		return fmt.Errorf("contains %s, which systemd-sysext refuses in an extension", hostOSRelease)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", hostOSRelease, err)
	}
	rel, err := findRelease(fsys, img.Name)
	if err != nil {
		return err
	}
	img.ReleasePath, img.Release = rel.path, rel.fields
	hasFirmware, err := checkHierarchy(fsys)
	if err != nil {
		return err
	}
	mp := ManifestPath(rel.name)
	data, err := fsys.ReadFile(mp)
	switch {
	case err == nil:
		m, err := ParseManifest(data, rel.name)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", mp, err)
		}
		img.FromManifest = true
		img.Firmware, img.Modules = manifestFirmware(m), m.Modules
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("manifest %s: %w", mp, err)
	}
	if !hasFirmware {
		return nil
	}
	img.Firmware, img.Problems, err = listFirmware(fsys)
	return err
}
