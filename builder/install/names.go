package install

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// checkName accepts the file names `kairos-agent sysext list` and immucore's enable step see:
// they take a directory entry whose extension is ".raw" (filepath.Ext). The rest is systemd's
// image_name_is_valid(), and a leading dot is refused because our temporary files use it.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("no image file name (got %q)", name)
	case len(name) > 255:
		return fmt.Errorf("image file name %q is longer than 255 bytes", name)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("image file name %q contains '/'", name)
	case !utf8.ValidString(name) || strings.IndexFunc(name, isControl) >= 0:
		return fmt.Errorf("image file name %q is not valid UTF-8 or has a control character", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("image file name %q starts with '.'", name)
	case !strings.HasSuffix(name, ".raw") || name == ".raw":
		return fmt.Errorf("image file name %q does not end in .raw: kairos-agent and immucore would not see it", name)
	}
	return nil
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f
}
