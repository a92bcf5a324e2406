package manifests

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// FirmwareDir is where an extension image carries firmware (the host's /usr/lib/firmware).
const FirmwareDir = "usr/lib/firmware"

// updatesDir must not exist in an image: Kairos makes /usr/lib/firmware/updates a symlink to
// /usr/local/lib/firmware, and an overlay directory replaces a lower symlink (kairos#4290).
const updatesDir = "updates"

var errUpdates = errors.New("under usr/lib/firmware/updates/, which Kairos links to /usr/local/lib/firmware: a sysext directory there would hide that symlink (kairos#4290)")

// Compression suffixes the kernel's firmware loader tries after the plain name, in order
// (drivers/base/firmware_loader/main.c: fw_get_filesystem_firmware with "", ".zst", ".xz").
var compressionSuffixes = []struct{ suffix, name string }{{".zst", "zstd"}, {".xz", "xz"}}

// FirmwareFile is one firmware file an image provides.
type FirmwareFile struct {
	// Name is what a driver requests (request_firmware), e.g. rtw88/rtw8821a_fw.bin.
	Name string
	// Path is the file's path in the image, after resolving symlinks, e.g.
	// usr/lib/firmware/rtw88/rtw8821a_fw.bin.zst.
	Path string
	// Link is the target of the symlink at usr/lib/firmware/<Name><suffix> when that entry is a
	// symlink ("" otherwise).
	Link string
	// Compression is "zstd" or "xz" when the stored name has that suffix, "" otherwise.
	Compression string
	// Size is the stored (possibly compressed) size in bytes.
	Size int64
	// SHA256 is the hex digest of the stored bytes, only known from a manifest.
	SHA256 string
}

// Problem is an entry under usr/lib/firmware that provides nothing.
type Problem struct {
	Path   string // in the image
	Reason string
}

// splitCompression returns the lookup name and compression of a stored firmware name.
func splitCompression(stored string) (name, compression string) {
	for _, c := range compressionSuffixes {
		if n, ok := strings.CutSuffix(stored, c.suffix); ok && n != "" && !strings.HasSuffix(n, "/") {
			return n, c.name
		}
	}
	return stored, ""
}

// checkHierarchy rejects images whose usr, usr/lib or usr/lib/firmware is not a real
// directory (a symlink there would replace the host's directory in the overlay, kairos#4290)
// and images shipping usr/lib/firmware/updates.
func checkHierarchy(fsys *ImageFS) (hasFirmware bool, err error) {
	for _, p := range []string{"usr", "usr/lib", FirmwareDir} {
		fi, err := fsys.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", p, err)
		}
		if !fi.IsDir() {
			return false, fmt.Errorf("%s is a %s, not a directory: the overlay would replace the host's directory with it (kairos#4290)", p, typeName(fi.Mode()))
		}
	}
	if _, err := fsys.Lstat(FirmwareDir + "/" + updatesDir); err == nil {
		return false, fmt.Errorf("%s/%s exists: %w", FirmwareDir, updatesDir, errUpdates)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%s/%s: %w", FirmwareDir, updatesDir, err)
	}
	return true, nil
}

// listFirmware walks usr/lib/firmware. Regular files are listed; symlinks are resolved inside
// the image (a link to a directory is walked under the link's name); links climbing out of the
// image, dangling links, loops and other file types become Problems.
// maxFirmwareEntries is the most entries listFirmware walks (a variable for the tests).
var maxFirmwareEntries = 1 << 20

func listFirmware(fsys *ImageFS) ([]FirmwareFile, []Problem, error) {
	var files []FirmwareFile
	var problems []Problem
	// entries bounds the walk: a crafted erofs or squashfs image can list one directory under
	// many names at every level (no cycle, so active does not stop it), a tree that grows
	// exponentially with depth. linux-firmware has some 4,000 entries.
	entries := 0
	// active holds the real directories being walked, against symlink cycles; a directory
	// reached twice by different names (a link to a sibling) is listed under both.
	active := map[string]bool{}
	var walk func(dir, as string) error
	walk = func(dir, as string) error {
		if active[dir] {
			problems = append(problems, Problem{Path: as, Reason: fmt.Sprintf("symlink cycle: %s is its own ancestor", dir)})
			return nil
		}
		active[dir] = true
		defer delete(active, dir)
		ents, err := fsys.low.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		for _, e := range ents {
			if entries++; entries > maxFirmwareEntries {
				return fmt.Errorf("%s: more than %d entries under %s: a directory reused under many names?", dir, maxFirmwareEntries, FirmwareDir)
			}
			stored := path.Join(dir, e.Name())
			rel := strings.TrimPrefix(path.Join(as, e.Name()), FirmwareDir+"/")
			switch t := e.Type(); {
			case t.IsDir():
				if err := walk(stored, path.Join(as, e.Name())); err != nil {
					return err
				}
			case t.IsRegular():
				// The entry's own Info: a fresh Lstat walks the path again, and the squashfs
				// reader decompresses every metadata block on the way for each file (seconds
				// for a linux-firmware image).
				fi, err := e.Info()
				if err != nil {
					return fmt.Errorf("%s: %w", stored, err)
				}
				name, comp := splitCompression(rel)
				files = append(files, FirmwareFile{Name: name, Path: stored, Compression: comp, Size: fi.Size()})
			case t&fs.ModeSymlink != 0:
				link, err := fsys.low.ReadLink(stored)
				if err != nil {
					return fmt.Errorf("%s: %w", stored, err)
				}
				target, err := chase(fsys.low, stored, true, true)
				if err != nil {
					problems = append(problems, Problem{Path: stored, Reason: fmt.Sprintf("symlink to %q: %v", link, linkReason(err))})
					continue
				}
				fi, err := fsys.low.Lstat(target)
				if err != nil {
					return fmt.Errorf("%s: %w", target, err)
				}
				switch {
				case fi.IsDir():
					if target == FirmwareDir+"/"+updatesDir || strings.HasPrefix(target, FirmwareDir+"/"+updatesDir+"/") {
						problems = append(problems, Problem{Path: stored, Reason: fmt.Sprintf("symlink to %q: %v", link, errUpdates)})
						continue
					}
					if err := walk(target, path.Join(as, e.Name())); err != nil {
						return err
					}
				case fi.Mode().IsRegular():
					name, comp := splitCompression(rel)
					files = append(files, FirmwareFile{Name: name, Path: target, Link: link, Compression: comp, Size: fi.Size()})
				default:
					problems = append(problems, Problem{Path: stored, Reason: fmt.Sprintf("symlink to %q: target is a %s, not a regular file", link, typeName(fi.Mode()))})
				}
			default:
				problems = append(problems, Problem{Path: stored, Reason: fmt.Sprintf("a %s, not a regular file", typeName(t))})
			}
		}
		return nil
	}
	if err := walk(FirmwareDir, FirmwareDir); err != nil {
		return nil, nil, err
	}
	sortFirmware(files)
	sort.Slice(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
	return files, problems, nil
}

func linkReason(err error) string {
	switch {
	case errors.Is(err, ErrLeavesImage):
		return "leaves the image (\"..\" above its root)"
	case errors.Is(err, fs.ErrNotExist):
		return "target missing in the image"
	case errors.Is(err, ErrSymlinkLoop):
		return "symlink loop"
	}
	return err.Error()
}

// sortFirmware orders by lookup name, then in the kernel's lookup order (plain, .zst, .xz).
func sortFirmware(files []FirmwareFile) {
	rank := func(c string) int {
		for i, s := range compressionSuffixes {
			if s.name == c {
				return i + 1
			}
		}
		return 0
	}
	sort.SliceStable(files, func(i, j int) bool {
		if files[i].Name != files[j].Name {
			return files[i].Name < files[j].Name
		}
		return rank(files[i].Compression) < rank(files[j].Compression)
	})
}

// manifestFirmware turns manifest entries into FirmwareFiles.
func manifestFirmware(m *Manifest) []FirmwareFile {
	files := make([]FirmwareFile, 0, len(m.Firmware))
	for _, fw := range m.Firmware {
		name, comp := splitCompression(fw.Path)
		files = append(files, FirmwareFile{Name: name, Path: FirmwareDir + "/" + fw.Path, Compression: comp, Size: fw.Size, SHA256: fw.SHA256})
	}
	sortFirmware(files)
	return files
}

// typeName names a file type for messages.
func typeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "file of mode " + m.String()
}
