package merge

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/manifests"
)

// maxFirmwarePath is the longest firmware_class.path the kernel takes: fw_path_para is
// char[256] (drivers/base/firmware_loader/main.c) and param_set_copystring() refuses a value
// whose length plus its NUL exceeds that with ENOSPC (kernel/params.c).
const maxFirmwarePath = 255

// firmwareFlags: the firmware directory is only ever read by the kernel.
const firmwareFlags = unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOSUID

// firmwareDir is where several images' firmware is stacked.
func firmwareDir(runDir string) string { return path.Join(runDir, "firmware") }

// firmware makes the images' firmware one directory and points firmware_class.path at it.
//
// The kernel looks firmware up with kernel_read_file_from_path_initns(), which opens the path
// from init's root in init's mount namespace (fs/kernel_read_file.c), whatever task asks. In
// the initrd that is the initramfs, so a mount inside /sysroot is not seen; a directory in the
// initrd's /run is, and firmware_class.path is searched before /lib/firmware
// (fw_get_filesystem_firmware() in drivers/base/firmware_loader/main.c).
func (m *merger) firmware(layers []*imageRec) {
	fw := &m.st.Firmware
	if len(layers) == 0 {
		return
	}
	for _, r := range layers {
		fw.Layers = append(fw.Layers, r.st.Name)
	}
	var dir string
	if len(layers) == 1 {
		// One image: its directory as it is. An overlay needs two layers at least when it
		// has no upper directory (ovl_get_lowerstack), and gains nothing here.
		dir = path.Join(layers[0].st.Mount, manifests.FirmwareDir)
	} else {
		dir = firmwareDir(m.o.RunDir)
	}
	if len(dir) > maxFirmwarePath {
		fw.Error = fmt.Sprintf("the firmware directory %s is %d bytes; firmware_class.path takes at most %d (use a shorter RunDir or image name)", dir, len(dir), maxFirmwarePath)
		return
	}
	previous, err := m.currentFirmwarePath()
	if err != nil {
		fw.Error = err.Error()
		return
	}
	if len(layers) > 1 {
		var paths []string
		for _, r := range layers {
			paths = append(paths, m.root.Real(path.Join(r.st.Mount, manifests.FirmwareDir)))
		}
		data, err := lowerdirOption(paths)
		if err == nil {
			err = m.j.mkdirAll(dir, "")
		}
		if err == nil {
			err = m.j.mount("", ourSource, dir, "overlay", firmwareFlags, data)
		}
		if err != nil {
			fw.Error = err.Error()
			return
		}
	}
	fw.Dir, fw.Previous = dir, previous
	if previous != "" {
		m.st.Warnings = append(m.st.Warnings, fmt.Sprintf("firmware_class.path was %q: the kernel takes one directory, so that one is not searched until Unmerge gives it back", previous))
	}
	// Written as is, without a newline: param_set_copystring() keeps every byte it is given.
	if err := m.j.attr(m.o.FirmwareClassPath, dir, previous); err != nil {
		fw.Error = err.Error()
		return
	}
	fw.Written = true
}

// currentFirmwarePath reads firmware_class.path. The kernel shows it with a newline
// (param_get_string). A value inside RunDir is a leftover of an earlier merge, which could not
// be cleared (see restoreAttr): it counts as empty.
func (m *merger) currentFirmwarePath() (string, error) {
	data, err := m.root.FS.ReadFile(m.o.FirmwareClassPath)
	if err != nil {
		return "", fmt.Errorf("firmware_class.path: %w (a kernel without the firmware loader cannot be given a directory)", err)
	}
	v := strings.TrimSuffix(string(data), "\n")
	if v == m.o.RunDir || strings.HasPrefix(v, m.o.RunDir+"/") {
		return m.previousFirmwarePath, nil
	}
	return v, nil
}
