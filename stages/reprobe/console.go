package reprobe

import (
	"path"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
)

// console guards the graphics device of the console: the PCI device whose boot_vga reads 1
// (the VGA device the firmware initialised, https://github.com/torvalds/linux/blob/v6.1/drivers/pci/pci-sysfs.c
// boot_vga_show), and the device behind fb0, where fbcon puts the consoles by default
// (https://github.com/torvalds/linux/blob/v6.1/drivers/video/fbdev/core/fbcon.c con2fb_map). Unbinding either blanks the only place a boot
// problem can be read.
func (g *Guards) console(root *hostfs.Root, devices []*hwmatch.Device) {
	for _, d := range devices {
		if d.Bus != "pci" || d.SysfsPath == "" {
			continue
		}
		data, err := root.FS.ReadFile(path.Join(d.SysfsPath, "boot_vga"))
		if err == nil && strings.TrimSpace(string(data)) == "1" {
			g.protect(d.SysfsPath, "drives the boot console (boot_vga is 1)", []string{d.ID})
		}
	}
	if dev, err := root.Resolve("/sys/class/graphics/fb0/device"); err == nil {
		g.protect(dev, "drives the console framebuffer fb0", []string{"fb0"})
	}
}
