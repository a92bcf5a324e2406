package config

import (
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Each check returns the normalized value and an empty message, or a message saying what is
// wrong and what is expected. The checks run in the order written; the first failure is
// reported.

// nameMax is NAME_MAX, the longest file name Linux accepts.
const nameMax = 255

// moduleNameMax is MODULE_NAME_LEN (64 - sizeof(unsigned long)) minus the terminating NUL.
const moduleNameMax = 55

// checkImageName validates an extension image name the way systemd's image_name_is_valid()
// does (a valid file name, no control characters, valid UTF-8, not a ".#" temporary file), and
// refuses the file suffix, which is not part of the name.
func checkImageName(s string) (string, string) {
	switch {
	case s == "":
		return "", "empty image name"
	case len(s) > nameMax:
		return "", fmt.Sprintf("image name longer than %d bytes", nameMax)
	case s == "." || s == "..":
		return "", "image name cannot be . or .."
	case strings.Contains(s, "/"):
		return "", "image name cannot contain '/'; give the name, not a path"
	case hasControl(s):
		return "", "image name contains a control character"
	case !utf8.ValidString(s):
		return "", "image name is not valid UTF-8"
	case strings.HasPrefix(s, ".#"):
		return "", "image name cannot start with .# (systemd's temporary files)"
	case strings.HasSuffix(s, ".raw"):
		return "", "give the image name without .sysext.raw / .raw"
	}
	return s, ""
}

// checkIDPattern validates a "vendor:product" id pattern; each side is 4 hex digits or '*'.
// The result is lower case, as sysfs writes ids.
func checkIDPattern(s string) (*IDPattern, string) {
	vendor, product, found := strings.Cut(s, ":")
	switch {
	case s == "":
		return nil, "empty id; want vendor:product like 2357:011e"
	case !found:
		return nil, "not a vendor:product id; want hhhh:hhhh, '*' allowed per side"
	case strings.Contains(product, ":"):
		return nil, "more than one ':'; want hhhh:hhhh, '*' allowed per side"
	case !isIDSide(vendor):
		return nil, "vendor is not 4 hex digits or '*'; want hhhh:hhhh, '*' allowed per side"
	case !isIDSide(product):
		return nil, "product is not 4 hex digits or '*'; want hhhh:hhhh, '*' allowed per side"
	}
	return &IDPattern{Vendor: strings.ToLower(vendor), Product: strings.ToLower(product)}, ""
}

func isIDSide(s string) bool {
	return s == "*" || (len(s) == 4 && isHex(s))
}

// checkClass validates a PCI class code prefix: class, class+subclass or
// class+subclass+prog-if, that is 2, 4 or 6 hex digits, optionally written with 0x as sysfs
// shows it. The result is lower case without 0x.
func checkClass(s string) (string, string) {
	digits := s
	if strings.HasPrefix(digits, "0x") || strings.HasPrefix(digits, "0X") {
		digits = digits[2:]
	}
	switch {
	case digits == "":
		return "", "empty class; want 2, 4 or 6 hex digits like 0280"
	case !isHex(digits):
		return "", "class is not hex; want 2, 4 or 6 hex digits like 0280"
	case len(digits) != 2 && len(digits) != 4 && len(digits) != 6:
		return "", "class must be 2, 4 or 6 hex digits (class, +subclass, +prog-if)"
	}
	return strings.ToLower(digits), ""
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// checkGlob validates an fnmatch pattern. The matcher (hwmatch/kmod) implements fnmatch; the
// syntax check here is path.Match's: every pattern path.Match accepts is a valid fnmatch pattern
// with the same meaning of '*', '?', '[...]', '[^...]' and '\' escapes, and path.Match reports
// ErrBadPattern for a malformed one even when matching the empty name fails early. path.Match is
// the stricter of the two (it refuses an unterminated '[' and a ']' first in a class, which
// fnmatch would take literally), so a pattern that passes here means the same to fnmatch.
func checkGlob(s string) (string, string) {
	switch {
	case s == "":
		return "", "empty pattern"
	case hasControl(s):
		return "", "pattern contains a control character"
	}
	if _, err := path.Match(s, ""); err != nil {
		return "", `invalid glob pattern; check the [...] classes and \ escapes`
	}
	return s, ""
}

// checkDriver validates a kernel module name. The kernel treats '-' and '_' alike and
// modules.alias writes '_', so the result uses '_'.
func checkDriver(s string) (string, string) {
	switch {
	case s == "":
		return "", "empty module name"
	case len(s) > moduleNameMax:
		return "", fmt.Sprintf("module name longer than %d characters (MODULE_NAME_LEN)", moduleNameMax)
	case strings.IndexFunc(s, notModuleRune) >= 0:
		return "", "module name may only contain letters, digits, '_' and '-'"
	}
	return strings.ReplaceAll(s, "-", "_"), ""
}

func notModuleRune(r rune) bool {
	return !(r == '_' || r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
}

// dmiFields are the files of /sys/class/dmi/id/ that the kernel's dmi-id.c creates from SMBIOS
// strings (modalias and uevent are not fields).
var dmiFields = []string{
	"bios_vendor", "bios_version", "bios_date", "bios_release", "ec_firmware_release",
	"sys_vendor", "product_name", "product_version", "product_serial", "product_uuid",
	"product_sku", "product_family",
	"board_vendor", "board_name", "board_version", "board_serial", "board_asset_tag",
	"chassis_vendor", "chassis_type", "chassis_version", "chassis_serial", "chassis_asset_tag",
}

// checkStore validates an image directory: absolute, since it resolves under the root.
func checkStore(s string) (string, string) {
	switch {
	case s == "":
		return "", "empty directory"
	case hasControl(s):
		return "", "directory contains a control character"
	case !strings.HasPrefix(s, "/"):
		return "", "directory must be an absolute path"
	}
	return s, ""
}

// checkDeviceName validates a sysfs device name such as 0000:00:1f.2 (PCI) or 1-2 (USB): the
// name of an entry under /sys/bus/*/devices.
func checkDeviceName(s string) (string, string) {
	switch {
	case s == "":
		return "", "empty device name"
	case len(s) > nameMax:
		return "", fmt.Sprintf("device name longer than %d bytes", nameMax)
	case s == "." || s == "..":
		return "", "device name cannot be . or .."
	case strings.Contains(s, "/"):
		return "", "device name cannot contain '/'; give the name under /sys/bus/*/devices, like 0000:00:1f.2"
	case strings.IndexFunc(s, unicode.IsSpace) >= 0 || hasControl(s):
		return "", "device name contains white space or a control character"
	}
	return s, ""
}

// installSchemes are the URI schemes kairos-agent's `sysext install` accepts
// (pkg/action/sysext.go parseURI).
var installSchemes = []string{"oci", "docker", "container", "file", "http", "https"}

// checkInstallURI validates the scheme of an image URI, and that something follows it.
func checkInstallURI(s string) (string, string) {
	switch {
	case s == "":
		return "", "empty URI"
	case hasControl(s):
		return "", "URI contains a control character"
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "not a URI: " + strings.TrimPrefix(err.Error(), "parse "+fmt.Sprintf("%q", s)+": ")
	}
	known := false
	for _, scheme := range installSchemes {
		if u.Scheme == scheme {
			known = true
		}
	}
	switch {
	case u.Scheme == "":
		return "", "missing scheme; want oci:, docker:, container:, file:, http: or https:"
	case !known:
		return "", fmt.Sprintf("unsupported scheme %q; want oci:, docker:, container:, file:, http: or https:", u.Scheme)
	case u.Opaque == "" && u.Host == "" && u.Path == "":
		return "", "nothing after the scheme"
	}
	return s, ""
}

// checkTimeout validates a Go duration string within (0, MaxTimeout].
func checkTimeout(s string) (Duration, string) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, `not a Go duration; want a number with a unit, like "10s" or "1m30s"`
	case d <= 0:
		return 0, "timeout must be more than 0"
	case d > MaxTimeout:
		return 0, fmt.Sprintf("timeout longer than %s", MaxTimeout)
	}
	return Duration(d), ""
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}
