package merge

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
)

// firmwareHierarchy is the image directory the kernel is pointed at.
const firmwareHierarchy = "/" + manifests.FirmwareDir

// content is what Merge needs to know of an image's tree, read from the image file in
// userspace (the same readers plan uses), so that a dry run sees what a merge would do.
type content struct {
	// layers says, per hierarchy ("/usr/lib", and firmwareHierarchy), whether the image would
	// be a layer of its overlay: systemd-sysext uses an image for a hierarchy when the
	// hierarchy exists in it and is not empty (determine_middle_lower_dirs in sysext.c).
	layers map[string]bool
	// notes say why a hierarchy the image has is not used.
	notes []string
	// sources are the filesystems to mount, for a file image.
	sources []blockSource
	// clashes are, per hierarchy of Options.Hierarchies the image is a layer of, its
	// directories that are symlinks in the sysroot (symlinkClashes); clashErrs say why a
	// hierarchy could not be looked at. Read while the image is open for the rest, so that
	// Merge opens each image once.
	clashes   map[string][]string
	clashErrs map[string]error
}

// readContent opens the image at the real path file and looks at the hierarchies, and for each
// it would be a layer of, at what it would hide of the sysroot target. image is its name and
// rootHashes its verified dm-verity root hashes (manifests.Image.RootHashes).
func readContent(image, file string, hierarchies []string, rootHashes map[int][]byte, target *hostfs.Root) (*content, error) {
	fsys, format, closer, err := manifests.Open(file)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	ifs, ok := fsys.(*manifests.ImageFS)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected image reader %T", file, fsys)
	}
	c := &content{layers: map[string]bool{}, clashes: map[string][]string{}, clashErrs: map[string]error{}}
	if format != manifests.FormatDirectory {
		if c.sources, err = fileSources(image, file, format, ifs, rootHashes); err != nil {
			return nil, err
		}
	}
	for _, h := range append([]string{firmwareHierarchy}, hierarchies...) {
		if _, done := c.layers[h]; done {
			continue
		}
		use, note, err := populated(ifs, h)
		if err != nil {
			return nil, err
		}
		c.layers[h] = use
		if note != "" {
			c.notes = append(c.notes, note)
		}
		if use && h != firmwareHierarchy {
			c.clashes[h], c.clashErrs[h] = symlinkClashes(ifs, h, target)
		}
	}
	return c, nil
}

// populated reports whether hierarchy h is a non-empty directory in the image. Each component
// must be a real directory: the layer is handed to the kernel as a path through the mounted
// image, and a symlink there would be followed by the kernel outside the image (systemd
// resolves such links inside the image with chase(); Merge leaves the image out of that
// hierarchy instead).
func populated(ifs *manifests.ImageFS, h string) (bool, string, error) {
	rel := strings.TrimPrefix(h, "/")
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := ifs.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, "", nil
		}
		if err != nil {
			return false, "", fmt.Errorf("%s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return false, fmt.Sprintf("%s is a symlink in the image: not used as a layer of %s", p, h), nil
		}
		if !fi.IsDir() {
			return false, fmt.Sprintf("%s is not a directory in the image: not used as a layer of %s", p, h), nil
		}
	}
	ents, err := ifs.ReadDir(rel)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", rel, err)
	}
	return len(ents) > 0, "", nil
}

// symlinkClashes lists the directories of the image ifs, below hierarchy
// h, that the sysroot target has as symlinks: an overlay would put the directory in the
// link's place (kairos#4290). The walk only goes down directories the sysroot has as real
// directories too (below anything else no clash is possible), which keeps it short: reading a
// squashfs directory in userspace costs milliseconds.
func symlinkClashes(ifs *manifests.ImageFS, h string, target *hostfs.Root) ([]string, error) {
	var clashes []string
	var walk func(string) error
	walk = func(d string) error {
		ents, err := ifs.ReadDir(d)
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			p := path.Join(d, e.Name())
			fi, err := target.FS.Lstat("/" + p)
			switch {
			case err != nil:
				continue // not in the sysroot (or unreadable there): nothing to hide
			case fi.Mode()&fs.ModeSymlink != 0:
				link, _ := target.FS.Readlink("/" + p)
				clashes = append(clashes, fmt.Sprintf("/%s over the symlink /%s -> %s", p, p, link))
			case fi.IsDir():
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(strings.TrimPrefix(h, "/")); err != nil {
		return nil, err
	}
	sort.Strings(clashes)
	return clashes, nil
}
