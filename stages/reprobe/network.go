package reprobe

import (
	"fmt"
	"path"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
)

// dracut reads these as command line too, before /proc/cmdline
// (https://github.com/dracutdevs/dracut/blob/master/modules.d/99base/dracut-lib.sh getcmdline):
// an initramfs may carry its ip= there.
const (
	dracutCmdline    = "/etc/cmdline"
	dracutCmdlineDir = "/etc/cmdline.d"
)

// maxNetDepth bounds the walk from a bond, bridge or vlan to the interfaces below it.
const maxNetDepth = 8

// network guards the device of the interface a network root (or any network the initramfs
// brings up) uses. An interface named by the command line is found by name, or by MAC address
// in /sys/class/net/*/address; its device is where /sys/class/net/<if>/device leads. When the
// network is asked for but no interface is named, or a named one is not here, every device that
// carries a network interface now, and every bound PCI network device (class 02xxxx), is
// guarded. A device without a driver carries no interface and stays free to re-probe: that is
// the case of a NIC that lacks its firmware.
func (g *Guards) network(root *hostfs.Root, devices []*hwmatch.Device, cmdlinePath string) {
	data, err := root.FS.ReadFile(cmdlinePath)
	if err != nil {
		g.everyNetworkDevice(root, devices, fmt.Sprintf("and whether the network root uses it cannot be told (cannot read %s: %v)",
			root.Real(cmdlinePath), unwrapPathError(err)))
		return
	}
	req := parseNetCmdline(strings.Join(append(dracutCmdlineFiles(root), string(data)), " "))
	if req.asked == "" {
		return
	}
	if len(req.names) == 0 && len(req.macs) == 0 {
		g.everyNetworkDevice(root, devices, fmt.Sprintf("and %s names no interface: every network device is guarded", req.asked))
		return
	}
	var missing []string
	for _, n := range req.names {
		if !g.netInterface(root, n.value, fmt.Sprintf("carries %s, the interface %s names", n.value, n.by), nil, 0) {
			missing = append(missing, fmt.Sprintf("%s names %s", n.by, n.value))
		}
	}
	for _, m := range req.macs {
		found := false
		for _, name := range interfacesByMAC(root, m.value) {
			what := fmt.Sprintf("carries %s, the interface with address %s that %s names", name, m.value, m.by)
			found = g.netInterface(root, name, what, nil, 0) || found
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%s names %s", m.by, m.value))
		}
	}
	if len(missing) > 0 {
		g.everyNetworkDevice(root, devices, fmt.Sprintf("and %s, which is not here: every network device is guarded", strings.Join(missing, "; ")))
	}
}

// dracutCmdlineFiles returns the contents of dracut's command line files under the root,
// without comment lines.
func dracutCmdlineFiles(root *hostfs.Root) []string {
	files := []string{dracutCmdline}
	entries, _ := root.FS.ReadDir(dracutCmdlineDir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".conf") {
			files = append(files, path.Join(dracutCmdlineDir, e.Name()))
		}
	}
	var out []string
	for _, f := range files {
		data, err := root.FS.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") {
				out = append(out, line)
			}
		}
	}
	return out
}

// netInterface protects the device below the interface name, following a bond, bridge, vlan
// or team down to its ports: those have no device link but a lower_<port> link for each
// (https://github.com/torvalds/linux/blob/v6.1/net/core/dev.c netdev_adjacent_sysfs_add). It
// reports whether the interface exists.
func (g *Guards) netInterface(root *hostfs.Root, name, what string, chain []string, depth int) bool {
	if !validIfName(name) || depth > maxNetDepth {
		return false
	}
	dir := path.Join("/sys/class/net", name)
	if _, err := root.FS.Stat(dir); err != nil {
		return false
	}
	chain = append(chain, name)
	if dev, err := root.Resolve(path.Join(dir, "device")); err == nil {
		g.protect(dev, what, chain)
		return true
	}
	entries, _ := root.FS.ReadDir(dir)
	for _, e := range entries {
		if lower, ok := strings.CutPrefix(e.Name(), "lower_"); ok {
			g.netInterface(root, lower, what, chain, depth+1)
		}
	}
	return true
}

// validIfName is the kernel's dev_valid_name: not empty, at most 15 bytes, not "." or "..",
// no '/', ':' or white space (https://github.com/torvalds/linux/blob/v6.1/net/core/dev.c).
func validIfName(name string) bool {
	return name != "" && len(name) < 16 && name != "." && name != ".." && !strings.ContainsAny(name, "/: \t\n")
}

// interfacesByMAC returns the interfaces whose address is mac (lower case): a bridge, bond or
// vlan shares the address of a port, so there may be several; those with a device come first.
func interfacesByMAC(root *hostfs.Root, mac string) []string {
	var physical, virtual []string
	entries, _ := root.FS.ReadDir("/sys/class/net")
	for _, e := range entries {
		dir := path.Join("/sys/class/net", e.Name())
		data, err := root.FS.ReadFile(path.Join(dir, "address"))
		if err != nil || strings.ToLower(strings.TrimSpace(string(data))) != mac {
			continue
		}
		if _, err := root.FS.Stat(path.Join(dir, "device")); err == nil {
			physical = append(physical, e.Name())
		} else {
			virtual = append(virtual, e.Name())
		}
	}
	return append(physical, virtual...)
}

// everyNetworkDevice guards every device that carries a network interface, and every bound PCI
// device of the network class; why completes each reason.
func (g *Guards) everyNetworkDevice(root *hostfs.Root, devices []*hwmatch.Device, why string) {
	entries, _ := root.FS.ReadDir("/sys/class/net")
	for _, e := range entries {
		if dev, err := root.Resolve(path.Join("/sys/class/net", e.Name(), "device")); err == nil {
			g.protect(dev, fmt.Sprintf("carries network interface %s, %s", e.Name(), why), []string{e.Name()})
		}
	}
	for _, d := range devices {
		if d.Bus == "pci" && strings.HasPrefix(d.Class, "02") && d.Driver != "" && d.SysfsPath != "" {
			g.protect(d.SysfsPath, fmt.Sprintf("is a network device bound to %s, %s", d.Driver, why), nil)
		}
	}
}
