package manifests

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Suffixes of systemd's image naming (src/shared/discover-image.c extract_image_basename and
// src/basic/os-util.c path_extract_image_name, systemd v256+).
const (
	rawSuffix    = ".raw"    // required for regular-file images, never stripped from directories
	sysextSuffix = ".sysext" // optional class suffix, stripped after ".raw"
	nameMax      = 255       // NAME_MAX, filename_is_valid
)

// ImageName returns the name systemd-sysext gives the image file (or directory) at path:
// the last path component, minus ".raw" (required for files), minus an optional ".sysext"
// after that, which must then pass image_name_is_valid. So "firmware.sysext.raw", "firmware.raw"
// and a directory "firmware.sysext" are all named "firmware". systemd before v256 only
// stripped ".raw" (a file "firmware.sysext.raw" was named "firmware.sysext"); this follows the
// current rule, which AuroraBoot's "*.sysext.raw" images are built for.
func ImageName(path string, isDir bool) (string, error) {
	name := filepath.Base(filepath.Clean(path))
	if !isDir {
		if !strings.HasSuffix(name, rawSuffix) {
			return "", fmt.Errorf("%s: not a %s file: systemd-sysext ignores regular files without the %s suffix", path, rawSuffix, rawSuffix)
		}
		name = strings.TrimSuffix(name, rawSuffix)
	}
	name = strings.TrimSuffix(name, sysextSuffix)
	if err := checkImageName(name); err != nil {
		return "", fmt.Errorf("%s: image name %q: %w", path, name, err)
	}
	return name, nil
}

// checkImageName is image_name_is_valid: a valid file name (not empty, ".", ".." nor longer
// than NAME_MAX, no "/"), no control characters, valid UTF-8, not starting with ".#"
// (temporary files).
func checkImageName(s string) error {
	switch {
	case s == "" || s == "." || s == "..":
		return fmt.Errorf("empty, \".\" or \"..\"")
	case len(s) > nameMax:
		return fmt.Errorf("%d bytes, longer than %d", len(s), nameMax)
	case strings.ContainsRune(s, '/'):
		return fmt.Errorf("contains \"/\"")
	case !utf8.ValidString(s):
		return fmt.Errorf("not valid UTF-8")
	case strings.HasPrefix(s, ".#"):
		return fmt.Errorf("starts with \".#\" (a temporary file)")
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("contains control character %U", r)
		}
	}
	return nil
}

// baseImageName is path_extract_image_name applied to an image name: the part before the
// first "_" or "+" (version and boot counting suffixes). The extension-release fallback
// accepts a release file named after it without the xattr.
func baseImageName(name string) string {
	for _, suf := range []string{".sysext.raw", ".confext.raw", ".raw"} {
		if strings.HasSuffix(name, suf) {
			name = strings.TrimSuffix(name, suf)
			break
		}
	}
	if i := strings.IndexAny(name, "_+"); i >= 0 {
		name = name[:i]
	}
	return name
}
