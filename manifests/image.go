package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// Read opens the image at path and describes it. Checks, in order: the name rule, the
// format, no usr/lib/os-release (systemd-sysext refuses such images), the extension-release
// file, the firmware hierarchy (real directories, no usr/lib/firmware/updates), then the
// manifest if present, else the firmware tree.
func Read(path string) (*Image, error) {
	lst, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	img := &Image{Path: path}
	if lst.Mode()&fs.ModeSymlink != 0 {
		if img.Target, err = filepath.EvalSymlinks(path); err != nil {
			return nil, fmt.Errorf("%s: resolving the symlink: %w", path, err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %v is neither a directory nor a regular file", path, st.Mode().Type())
	}
	if img.Name, err = ImageName(path, st.IsDir()); err != nil {
		return nil, err
	}
	fsys, format, closer, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	img.Format = format
	ifs := fsys.(*ImageFS)
	if err := img.read(ifs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

func (img *Image) read(fsys *ImageFS) error {
	if _, err := fsys.Lstat(hostOSRelease); err == nil {
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
