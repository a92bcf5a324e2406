package merge

import (
	"fmt"
	"os"
	"strings"
)

// ourSource is the source field of Merge's overlays in the mount table. Unmerge only ever
// unmounts an overlay that carries it, so it never takes down an overlay systemd-sysext (whose
// source is "sysext") or anyone else stacked at the same place.
const ourSource = "kairos-firmware"

// maxLayers is overlayfs' OVL_MAX_STACK (fs/overlayfs/params.h): at most 500 lower layers.
const maxLayers = 500

// lowerdirOption builds "lowerdir=a:b:c", top layer first. Overlayfs splits its options at ','
// and the lowerdir list at ':', honouring backslash escapes (ovl_unescape(),
// fs/overlayfs/params.c); systemd escapes the same characters (shell_escape(path, ",:") in
// append_overlayfs_path_option(), src/sysext/sysext.c). mount(2) copies at most one page of
// options (copy_mount_options(), fs/namespace.c), so a longer option is refused here rather
// than cut short by the kernel.
func lowerdirOption(layers []string) (string, error) {
	if len(layers) > maxLayers {
		return "", fmt.Errorf("%d overlay layers, more than overlayfs' %d", len(layers), maxLayers)
	}
	var b strings.Builder
	b.WriteString("lowerdir=")
	for i, l := range layers {
		if i > 0 {
			b.WriteByte(':')
		}
		for _, c := range []byte(l) {
			if c == '\\' || c == ',' || c == ':' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
	}
	if limit := os.Getpagesize() - 1; b.Len() > limit {
		return "", fmt.Errorf("overlay options are %d bytes, more than the %d mount(2) passes to the kernel", b.Len(), limit)
	}
	return b.String(), nil
}
