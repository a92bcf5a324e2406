package split

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// DefaultCatchAll names the image of the files no module declares.
const DefaultCatchAll = "linux-firmware-other"

// maxSharedName bounds a shared image's name; longer sets are abbreviated (sharedImage).
const maxSharedName = 100

// moduleImage names a module's own image.
func moduleImage(module string) string { return "firmware-" + module }

// sharedImage names the image of files several modules declare: their sorted names joined by
// "+" (firmware-amdgpu+radeon). Module names never hold '+' or '-', so the name tells the set.
// Past maxSharedName bytes it keeps the first module, the count of the others and a digest of
// the whole set: firmware-amdgpu+5-more-1a2b3c4d.
func sharedImage(modules []string) string {
	name := moduleImage(strings.Join(modules, "+"))
	if len(name) <= maxSharedName {
		return name
	}
	sum := sha256.Sum256([]byte(strings.Join(modules, "\n")))
	return fmt.Sprintf("%s+%d-more-%s", moduleImage(modules[0]), len(modules)-1, hex.EncodeToString(sum[:4]))
}

// safeName is what this tool writes: shell-safe characters systemd accepts in image names.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// checkName refuses a name that is not safeName, or that systemd-sysext would not derive from
// the file <name>.raw.
func checkName(what, name string) error {
	got, err := manifests.ImageName(name+".raw", false)
	if err != nil || got != name || !safeName.MatchString(name) || len(name) > 200 {
		return fmt.Errorf("%s %q is not a usable image name (want at most 200 letters, digits, '-', '_', '+' or '.', starting with a letter or digit)", what, name)
	}
	if strings.HasSuffix(name, ".sysext") {
		return fmt.Errorf("%s %q: systemd-sysext 256 and later would drop the .sysext suffix from the image name", what, name)
	}
	return nil
}
