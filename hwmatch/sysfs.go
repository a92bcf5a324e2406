package hwmatch

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// cause drops the operation and path that an *fs.PathError repeats, for messages that name the
// path themselves.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readTrimmed reads a one-line sysfs attribute.
func readTrimmed(root *hostfs.Root, p string) (string, error) {
	data, err := root.ReadAttr(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", root.Real(p), cause(err))
	}
	return strings.TrimSpace(string(data)), nil
}

// linkBase returns the last element of a sysfs link's target ("driver" -> ".../drivers/bnx2"
// gives "bnx2"), or "" when there is no such link.
func linkBase(root *hostfs.Root, p string) string {
	target, err := root.FS.Readlink(p)
	if err != nil {
		return ""
	}
	return path.Base(target)
}

// sysfsDevicePath resolves a /sys/bus/*/devices/<id> link to its /sys/devices/... directory.
// Links are relative in sysfs ("../../../devices/pci0000:00/0000:00:04.0").
func sysfsDevicePath(root *hostfs.Root, link string) string {
	target, err := root.FS.Readlink(link)
	if err != nil {
		return link
	}
	if path.IsAbs(target) {
		return path.Clean(target)
	}
	return path.Join(path.Dir(link), target)
}

// hexID reads a sysfs id file ("0x8086", "8086", "0x028000") and returns it as width lowercase
// hex digits, zero-padded. Problems are appended to warnings and give "".
func hexID(root *hostfs.Root, p string, width int, warnings *[]string) string {
	s, err := readTrimmed(root, p)
	if err != nil {
		*warnings = append(*warnings, err.Error())
		return ""
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 32)
	if err != nil || len(fmt.Sprintf("%x", v)) > width {
		*warnings = append(*warnings, fmt.Sprintf("%s: %q is not a %d-digit hex id", root.Real(p), s, width))
		return ""
	}
	return fmt.Sprintf("%0*x", width, v)
}

// readUevent reads the KEY=VALUE lines of a device's uevent file (dev_uevent in
// drivers/base/core.c). ok is false when there is none.
func readUevent(root *hostfs.Root, dir string) (map[string]string, bool) {
	data, err := root.ReadAttr(path.Join(dir, "uevent"))
	if err != nil {
		return nil, false
	}
	ev := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			ev[k] = v
		}
	}
	return ev, true
}
