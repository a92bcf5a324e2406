package plan

import (
	"sort"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/hwmatch/kmod"
)

func hasDeviceFields(m config.Match) bool {
	return m.USB != nil || m.PCI != nil || m.Class != "" || m.Modalias != "" || m.Driver != ""
}

// deviceMatches reports whether every device field of m matches d (all-of).
func deviceMatches(m config.Match, d *hwmatch.Device) bool {
	if m.USB != nil && (d.Bus != "usb" || !idMatches(*m.USB, d)) {
		return false
	}
	if m.PCI != nil && (d.Bus != "pci" || !idMatches(*m.PCI, d)) {
		return false
	}
	if m.Class != "" && !strings.HasPrefix(d.Class, m.Class) {
		return false
	}
	if m.Modalias != "" && (d.Modalias == "" || !kmod.Match(m.Modalias, d.Modalias)) {
		return false
	}
	if m.Driver != "" && !servesDevice(strings.ReplaceAll(m.Driver, "-", "_"), d) {
		return false
	}
	return true
}

func idMatches(p config.IDPattern, d *hwmatch.Device) bool {
	vendor, err1 := strconv.ParseUint(d.Vendor, 16, 16)
	product, err2 := strconv.ParseUint(d.Product, 16, 16)
	return err1 == nil && err2 == nil && p.Matches(uint16(vendor), uint16(product))
}

// servesDevice: the module matches the device's modalias, or is the bound driver.
func servesDevice(module string, d *hwmatch.Device) bool {
	if strings.ReplaceAll(d.Driver, "-", "_") == module {
		return true
	}
	for _, m := range d.Modules {
		if m == module {
			return true
		}
	}
	return false
}

// dmiMatches: every field glob matches the machine's value; no fields always match.
func dmiMatches(globs, dmi map[string]string) bool {
	for field, glob := range globs {
		value, ok := dmi[field]
		if !ok || !kmod.Match(glob, value) {
			return false
		}
	}
	return true
}

// describeMatch renders a matcher the way the configuration writes it.
func describeMatch(m config.Match) string {
	var parts []string
	if m.USB != nil {
		parts = append(parts, "usb "+m.USB.String())
	}
	if m.PCI != nil {
		parts = append(parts, "pci "+m.PCI.String())
	}
	if m.Class != "" {
		parts = append(parts, "class "+m.Class)
	}
	if m.Modalias != "" {
		parts = append(parts, "modalias "+m.Modalias)
	}
	if m.Driver != "" {
		parts = append(parts, "driver "+m.Driver)
	}
	fields := make([]string, 0, len(m.DMI))
	for f := range m.DMI {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		parts = append(parts, "dmi "+f+"="+m.DMI[f])
	}
	return strings.Join(parts, ", ")
}
